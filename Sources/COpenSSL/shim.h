// OpenSSL (Debian's libssl-dev), for the test harness's TLS-terminating fault proxy only.
#include <openssl/ssl.h>
#include <openssl/err.h>
