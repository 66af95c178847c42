import Foundation
import NIOCore
import NIOHTTP1

/// Gives the 400 Hummingbird writes for a request that is not valid HTTP the API's error shape.
/// Hummingbird answers a parse error (headers over the limit, a Content-Length that is no
/// number, a NUL in the path) with a bare 400 and closes the connection; no route or middleware
/// sees the request. This handler, between NIO's HTTP codec and the conversion to HTTP types,
/// notes the parse error on its way in and fills in that 400's body on its way out.
final class MalformedRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var parseError: HTTPParserError?

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError { parseError = error }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data), let error = parseError else {
            context.write(data, promise: promise)
            return
        }
        // The first head after a parse error answers it: a route's own answer (a 422 for a
        // broken chunked body) has its body already, so the error is forgotten either way.
        parseError = nil
        guard head.status == .badRequest, let body = try? Self.apiError(for: error).body() else {
            context.write(data, promise: promise)
            return
        }
        head.headers.replaceOrAdd(name: "Content-Type", value: "application/json; charset=utf-8")
        head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: promise)
    }

    static func apiError(for error: HTTPParserError) -> APIError {
        let reason = switch error {
        case .headerOverflow: "its headers, or its request line, are over the limit of 80 KiB"
        case .invalidContentLength: "its Content-Length is not a length"
        default: "it is not valid HTTP/1.1 (\(error))"
        }
        return APIError(.badRequest, "the request cannot be read: \(reason)", errors: ["request": [reason]])
    }
}
