/* aloft on ESP-IDF: what HTTPS downloads, reports and MQTTS trust. A CA
 * given in aloft_config_t.ca_pem, else the certificate bundle
 * (CONFIG_MBEDTLS_CERTIFICATE_BUNDLE, on by default); with neither, esp-tls
 * refuses to connect rather than trust anyone. */
#include "glue.h"
#ifdef CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
#include "esp_crt_bundle.h"
#endif

aloft_idf_bundle_fn aloft_idf_bundle(const struct aloft_idf *d)
{
#ifdef CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
    return aloft_idf_opt(d->cfg.ca_pem) ? NULL : esp_crt_bundle_attach;
#else
    (void)d;
    return NULL;
#endif
}
