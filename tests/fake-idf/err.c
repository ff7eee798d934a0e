/* fake-idf: esp_err_to_name for the codes the glue and the fakes return;
 * ESP_ERROR_CHECK's abort. */
#include <stdio.h>
#include <stdlib.h>

#include "esp_err.h"
#include "esp_http_client.h"
#include "nvs.h"

const char *esp_err_to_name(esp_err_t code)
{
    switch (code) {
#define NAME(c) case c: return #c
        NAME(ESP_OK);
        NAME(ESP_FAIL);
        NAME(ESP_ERR_NO_MEM);
        NAME(ESP_ERR_INVALID_ARG);
        NAME(ESP_ERR_INVALID_STATE);
        NAME(ESP_ERR_INVALID_SIZE);
        NAME(ESP_ERR_NOT_FOUND);
        NAME(ESP_ERR_NOT_SUPPORTED);
        NAME(ESP_ERR_TIMEOUT);
        NAME(ESP_ERR_NOT_ALLOWED);
        NAME(ESP_ERR_NVS_NOT_INITIALIZED);
        NAME(ESP_ERR_NVS_NOT_FOUND);
        NAME(ESP_ERR_NVS_TYPE_MISMATCH);
        NAME(ESP_ERR_NVS_READ_ONLY);
        NAME(ESP_ERR_NVS_NOT_ENOUGH_SPACE);
        NAME(ESP_ERR_NVS_INVALID_NAME);
        NAME(ESP_ERR_NVS_INVALID_HANDLE);
        NAME(ESP_ERR_NVS_KEY_TOO_LONG);
        NAME(ESP_ERR_NVS_INVALID_LENGTH);
        NAME(ESP_ERR_NVS_VALUE_TOO_LONG);
        NAME(ESP_ERR_HTTP_CONNECT);
        NAME(ESP_ERR_HTTP_FETCH_HEADER);
        NAME(ESP_ERR_HTTP_INCOMPLETE_DATA);
#undef NAME
    default: return "UNKNOWN ERROR";
    }
}

void _esp_error_check_failed(esp_err_t rc, const char *file, int line, const char *function, const char *expression)
{
    printf("ESP_ERROR_CHECK failed: esp_err_t 0x%x (%s) at %s:%d\nfile: \"%s\" line %d\nfunc: %s\nexpression: %s\n",
           (unsigned)rc, esp_err_to_name(rc), file, line, file, line, function, expression);
    fflush(stdout);
    abort();
}
