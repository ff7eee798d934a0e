/* fake-idf: esp_attr.h. RTC memory survives a software reset but not a
 * power cut: on the host it is a section that esp_restart carries across
 * the re-exec (system.c). */
#pragma once

#ifndef FAKE_IDF_DECLS_CHECK
#define RTC_NOINIT_ATTR __attribute__((section("fake_idf_rtc_noinit")))
#endif
