import Foundation
import LeadIngest

/// A one-line progress bar on stderr: bytes read, rows/s and ETA. Only drawn on a terminal.
final class ProgressBar {
    private let label: String
    private let started = Date()
    private var lastDraw = Date.distantPast

    init(label: String) {
        self.label = label
    }

    func update(_ progress: Ingest.Progress) {
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.2 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(progress.rows) / elapsed
        var line = "\r\(label) "
        if let total = progress.totalBytes, total > 0 {
            let fraction = min(Double(progress.bytesRead) / Double(total), 1)
            let width = 30
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += String(format: "%3.0f%% %@/%@", fraction * 100, Self.bytes(progress.bytesRead), Self.bytes(total))
            let remaining = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
            line += String(format: " %.0f rows/s ETA %@", rate, Self.duration(remaining))
        } else {
            line += String(format: "%@ %.0f rows/s", Self.bytes(progress.bytesRead), rate)
        }
        FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
    }

    func finish() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    static func bytes(_ count: Int64) -> String {
        let value = Double(count)
        if count >= 1 << 30 { return String(format: "%.1f GiB", value / 1_073_741_824) }
        if count >= 1 << 20 { return String(format: "%.1f MiB", value / 1_048_576) }
        return String(format: "%.0f KiB", value / 1024)
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }
}
