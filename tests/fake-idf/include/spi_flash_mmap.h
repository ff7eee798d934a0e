/* fake-idf: spi_flash_mmap.h — the erase sector. */
#pragma once

#ifndef FAKE_IDF_DECLS_CHECK
#define SPI_FLASH_SEC_SIZE 4096
#endif
