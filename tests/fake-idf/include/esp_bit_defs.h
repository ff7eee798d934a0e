/* fake-idf: esp_bit_defs.h — the BITn masks applications use with event
 * groups (FreeRTOS.h brings it in, as ESP-IDF's does). */
#pragma once

#ifndef FAKE_IDF_DECLS_CHECK
#define BIT3 0x00000008
#define BIT2 0x00000004
#define BIT1 0x00000002
#define BIT0 0x00000001
#endif
