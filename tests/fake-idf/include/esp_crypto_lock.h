/* fake-idf: esp_crypto_lock.h — the lock of the RSA accelerator (crypto.c). */
#pragma once

void esp_crypto_mpi_lock_acquire(void);
void esp_crypto_mpi_lock_release(void);
