#ifndef CCURL_SHIM_SETOPT_H
#define CCURL_SHIM_SETOPT_H

#include <curl/curl.h>

/// Non-variadic wrappers for curl's variadic setopt/getinfo functions, which Swift cannot call.

typedef size_t (*ccurl_data_callback)(char *data, size_t size, size_t nmemb, void *userdata);

CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode ccurl_easy_setopt_callback(CURL *handle, CURLoption option, ccurl_data_callback value);
/// Sets a blob option (certificate or key bytes); curl copies the bytes.
CURLcode ccurl_easy_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length);

CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode ccurl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value);
CURLcode ccurl_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value);

CURLMcode ccurl_multi_setopt_long(CURLM *handle, CURLMoption option, long value);

/// The value a write callback returns to pause a transfer (CURL_WRITEFUNC_PAUSE).
size_t ccurl_writefunc_pause(void);
/// The data of a finished-transfer message from curl_multi_info_read.
CURL *ccurl_msg_easy_handle(CURLMsg *msg);
CURLcode ccurl_msg_result(CURLMsg *msg);
int ccurl_msg_is_done(CURLMsg *msg);

#endif
