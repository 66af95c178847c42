// The CBLAS interface from libblas-dev. OpenBLAS provides the same symbols in libblas.so.3.
#include <cblas.h>
