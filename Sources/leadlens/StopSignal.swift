import Dispatch
import Foundation
import Synchronization

/// Turns SIGINT and SIGTERM into a flag that long-running loops poll, so they can finish the
/// batch in hand and commit it. A second signal exits at once; the store stays consistent
/// either way, because every batch is one transaction.
final class StopSignal: Sendable {
    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    private let flag = Flag()
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    init(signals: [Int32] = [SIGINT, SIGTERM]) {
        let flag = self.flag
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if flag.value.exchange(true, ordering: .relaxed) { Foundation.exit(130) }
                FileHandle.standardError.write(Data("\nstopping after the current batch… (again to quit now)\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
    }

    var isStopped: Bool { flag.value.load(ordering: .relaxed) }
}
