// zlib from zlib1g-dev. inflateInit2 and deflateInit2 are macros, which Swift cannot call.
#include <zlib.h>

// Inflates gzip (RFC 1952) or zlib (RFC 1950) data, whichever header the input has.
static inline int czlib_inflate_init(z_streamp stream) {
    return inflateInit2(stream, 15 + 32);
}

// Inflates raw deflate data (RFC 1951), which some clients send as Content-Encoding: deflate.
static inline int czlib_inflate_init_raw(z_streamp stream) {
    return inflateInit2(stream, -15);
}

// Deflates with a gzip header: tests make compressed inputs with it.
static inline int czlib_deflate_init_gzip(z_streamp stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
