import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// HTTP/1.0 clients (ApacheBench, some health checkers and proxies) expect the server to close
/// the connection after its response unless they asked to keep it alive. Hummingbird routes on
/// HTTP types that carry no version and keeps every connection open unless the request says
/// `Connection: close`; this handler, ahead of the conversion to those types, says it for them.
final class HTTP10ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(var head) = unwrapInboundIn(data), head.version == .http1_0, !head.isKeepAlive {
            head.headers.replaceOrAdd(name: "Connection", value: "close")
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}

/// Answers `Expect: 100-continue` with `100 Continue` as soon as the request's head arrives.
/// curl sends it for bodies over 1 MiB (a full Segment batch is one) and then waits a second for
/// the interim answer before sending the body; Hummingbird never gives one, so every such request
/// took a second longer. HTTP/1.0 clients' expectations are ignored, as RFC 9110 says.
///
/// A body the server will refuse unread is not invited: one declared over the body limit (413)
/// or sent with no key at all (401). Those get their final answer first, as the point of the
/// header is, with `Connection: close`: a client that has not sent the body then never does (Go's
/// sends it after any answer that keeps the connection), and the server does not read it either.
/// A key that turns out invalid is only known later, from the store: that body is sent, then refused.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let maxBodyBytes: Int
    /// The current request was not invited: its answer closes the connection.
    private var closing = false

    init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data), head.version.major == 1, head.version.minor >= 1,
              head.headers["Expect"].contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == "100-continue" })
        else {
            context.fireChannelRead(data)
            return
        }
        head.headers.remove(name: "Expect")
        let declared = head.headers["Content-Length"].first.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        // As authentication reads the headers (it alone knows whether the key is valid).
        let presentsKey = AuthMiddleware.presentedKey(authorization: head.headers.first(name: "Authorization"),
                                                      apiKey: head.headers.first(name: "X-API-Key")) != nil
        if (declared ?? 0) <= maxBodyBytes && presentsKey {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        } else {
            // Hummingbird closes after answering a request that says so (as for HTTP/1.0).
            head.headers.replaceOrAdd(name: "Connection", value: "close")
            closing = true
        }
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard closing, case .head(var head) = unwrapOutboundIn(data), head.status.code / 100 != 1 else {
            context.write(data, promise: promise)
            return
        }
        closing = false
        head.headers.replaceOrAdd(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}

/// Hummingbird's HTTP/1.1 child channel with ``HTTP10ConnectionHandler``,
/// ``MalformedRequestHandler`` and ``ExpectContinueHandler`` placed before the codec that turns
/// NIO's HTTP parts into HTTP types.
struct LeadLensHTTP1Channel: ServerChildChannel {
    let inner: HTTP1Channel
    /// The server's body limit: a larger declared body is not invited with 100 Continue.
    let maxBodyBytes: Int

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            // Should a later Hummingbird lay out its pipeline otherwise, connections still work:
            // only HTTP/1.0's close goes (the live test would say so).
            guard let codec = try? pipeline.handler(type: HTTP1ToHTTPServerCodec.self) else { return value }
            try pipeline.addHandler(HTTP10ConnectionHandler(), position: .before(codec))
            try pipeline.addHandler(MalformedRequestHandler(), position: .before(codec))
            try pipeline.addHandler(ExpectContinueHandler(maxBodyBytes: maxBodyBytes), position: .before(codec))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 as Hummingbird serves it, closing HTTP/1.0 connections as that version expects
    /// and connections silent for `idleTimeout`.
    static func leadLensHTTP1(idleTimeout: Duration, maxBodyBytes: Int) -> HTTPServerBuilder {
        .init { responder in
            LeadLensHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: TimeAmount(idleTimeout))),
                                 maxBodyBytes: maxBodyBytes)
        }
    }
}
