/* fake-idf: the crypto a signed update needs — the eFuse anti-rollback
 * counter (0: never burnt), the MPI lock, and the ROM's RSA-PSS check,
 * which here is OpenSSL's through host/signing.c: the key and signature are
 * the block's own bytes, as the ROM reads them. */
#include <pthread.h>
#include <string.h>

#include "aloft/sig.h"
#include "esp_crypto_lock.h"
#include "esp_efuse.h"
#include "rom/rsa_pss.h"
#include "signing.h"

static pthread_mutex_t mpi = PTHREAD_MUTEX_INITIALIZER;

uint32_t esp_efuse_read_secure_version(void)
{
    return 0;
}

void esp_crypto_mpi_lock_acquire(void)
{
    pthread_mutex_lock(&mpi);
}

void esp_crypto_mpi_lock_release(void)
{
    pthread_mutex_unlock(&mpi);
}

bool ets_rsa_pss_verify(const ets_rsa_pubkey_t *key, const uint8_t *sig, const uint8_t *digest, uint8_t *verified_digest)
{
    struct aloft_sig_block b = {.scheme = ALOFT_SIG_RSA3072, .digest_len = ETS_DIGEST_LEN,
                                .key = (const uint8_t *)key, .key_len = sizeof *key, .sig = sig,
                                .sig_len = ETS_SIG_LEN};
    if (!aloft_signing_verify(&b, digest))
        return false;
    memcpy(verified_digest, digest, ETS_DIGEST_LEN);
    return true;
}
