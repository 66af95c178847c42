import Foundation
import Logging
import ServiceLifecycle

extension Reports {
    /// Runs a job at each tick of a cron schedule, alongside the server in its ServiceGroup.
    /// A failed run is logged and the next tick runs as usual: a report failing never stops the
    /// server. Ticks missed while a run was still going (or the machine slept) are not caught
    /// up: the next run is the first tick after the previous one ended.
    public struct Scheduler: Service {
        public let schedule: CronSchedule
        public let timeZone: TimeZone
        let job: @Sendable () async throws -> Void
        let logger: Logger
        let now: @Sendable () -> Date
        let sleep: @Sendable (Duration) async throws -> Void

        public init(schedule: CronSchedule, timeZone: TimeZone, logger: Logger,
                    job: @escaping @Sendable () async throws -> Void) {
            self.init(schedule: schedule, timeZone: timeZone, logger: logger, now: { Date() },
                      sleep: { try await Task.sleep(for: $0) }, job: job)
        }

        /// With a clock of the caller's, for tests.
        init(schedule: CronSchedule, timeZone: TimeZone, logger: Logger, now: @escaping @Sendable () -> Date,
             sleep: @escaping @Sendable (Duration) async throws -> Void, job: @escaping @Sendable () async throws -> Void) {
            self.schedule = schedule
            self.timeZone = timeZone
            self.job = job
            self.logger = logger
            self.now = now
            self.sleep = sleep
        }

        /// The longest single sleep: the wall clock is read again after it, so a clock change or a
        /// suspended machine delays a run by at most this much.
        static let maximumSleep: TimeInterval = 60

        public func run() async throws {
            // Graceful shutdown cancels the sleep; a run in progress finishes first.
            try? await cancelWhenGracefulShutdown { try await loop() }
        }

        func loop() async throws {
            var after = now()
            while !Task.isCancelled {
                guard let tick = schedule.nextRun(after: after, in: timeZone) else {
                    logger.error("the report schedule has no next run; scheduler stopped", metadata: ["cron": "\(schedule)"])
                    return
                }
                logger.info("next report scheduled", metadata: ["report.next_run": "\(tick)"])
                while case let remaining = tick.timeIntervalSince(now()), remaining > 0 {
                    try await sleep(.milliseconds(Int64((min(remaining, Self.maximumSleep) * 1000).rounded(.up))))
                }
                do {
                    try await job()
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("scheduled report failed; retrying at the next tick", metadata: ["error": "\(error)"])
                }
                after = max(now(), tick)
            }
        }
    }
}
