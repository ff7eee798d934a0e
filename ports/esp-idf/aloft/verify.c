/* aloft on ESP-IDF: the signature check of signed updates (the agent
 * port's verify). An RSA-3072 block goes to the ROM's RSA-PSS routine, the
 * one secure boot v2 itself runs, on the RSA accelerator behind the lock
 * mbedTLS takes for it too. ESP32-C3 and ESP32-S3 secure boot signs with
 * RSA-3072 only, so an ECDSA block is refused here. */
#include <string.h>

#include "aloft/err.h"
#include "esp_crypto_lock.h"
#include "glue.h"
#include "rom/rsa_pss.h"

int aloft_idf_verify(void *ctx, const struct aloft_sig_block *b, const uint8_t *digest)
{
    (void)ctx;
    /* an aligned copy (the block may sit at any address); static, to keep
     * 776 bytes off the HTTP task's stack: the agent runs under one lock */
    static ets_rsa_pubkey_t key;
    uint8_t verified[ETS_DIGEST_LEN];
    if (b->scheme != ALOFT_SIG_RSA3072 || b->key_len != sizeof key)
        return ALOFT_E_SIGNATURE;
    memcpy(&key, b->key, sizeof key);
    esp_crypto_mpi_lock_acquire();
    bool ok = ets_rsa_pss_verify(&key, b->sig, digest, verified);
    esp_crypto_mpi_lock_release();
    return ok && !memcmp(verified, digest, sizeof verified) ? 0 : ALOFT_E_SIGNATURE;
}
