/* fake-idf: the certificate bundle. The fakes only look at whether a
 * client attached it; its CAs are the PEM file FAKE_IDF_CA_BUNDLE names
 * (a device built with a bundle that holds the test's CA), else the
 * system's. */
#include <stdlib.h>

#include "chip.h"
#include "esp_crt_bundle.h"

esp_err_t esp_crt_bundle_attach(void *conf)
{
    return conf ? ESP_OK : ESP_ERR_INVALID_ARG;
}

const char *fake_idf_ca_bundle(void)
{
    const char *f = getenv("FAKE_IDF_CA_BUNDLE");
    return f && *f ? f : NULL;
}
