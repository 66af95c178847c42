import Hummingbird
import Metrics
import Prometheus

/// The server's metrics, served at GET /metrics in Prometheus text format. Requests by route
/// and status and their latency histogram come from Hummingbird's MetricsMiddleware; the
/// domain counters are recorded here.
public enum APIMetrics {
    /// Bootstraps swift-metrics with a Prometheus registry, once per process (the metrics system
    /// is process-wide; a second bootstrap would trap).
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .seconds(2), .seconds(5), .seconds(10),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    static func eventsIngested(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: "leadlens_events_ingested_total").increment(by: count)
    }

    static func leadsScored(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: "leadlens_leads_scored_total").increment(by: count)
    }

    static func trainingRun(outcome: String) {
        Counter(label: "leadlens_training_runs_total", dimensions: [("outcome", outcome)]).increment()
    }

    static func register(on router: Router<APIRequestContext>) {
        router.get("metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}
