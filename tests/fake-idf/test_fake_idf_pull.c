/* The glue's pull job (pull.c) over the esp_http_client fake: a download
 * that drops mid-body resumes with Range, is installed, and the
 * bootloader then boots it; and the fake itself — ESP-IDF's event order,
 * a TLS handshake that fails as ESP_ERR_HTTP_CONNECT, a plain GET through
 * perform. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "esp_http_client.h"
#include "idfdev.h"
#include "imgserver.h"
#include "testdev.h"
#include "testflash.h"

#define IMAGE_SIZE (200 * 1024)
#define DROP_AT 70000 /* past the first 64 KB kept in the settings */

static struct img_server server;
static uint8_t *image;
static struct aloft_idf *dev;

static int setup(void **state)
{
    (void)state;
    size_t len;
    if (fake_idf_test_flash("fake-idf-pull.img") || !(image = aloft_test_image("esp32c3", "2.0.0", IMAGE_SIZE, NULL, &len)) ||
        img_server_start(&server, image, len, DROP_AT))
        return -1;
    dev = fake_idf_dev_start("pull-dev", NULL);
    return dev ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    img_server_stop(&server);
    free(image);
    return 0;
}

static void test_dropped_download_resumes(void **state)
{
    (void)state;
    struct aloft_pull_req r = {0};
    snprintf(r.url, sizeof r.url, "%s", server.url);
    snprintf(r.version, sizeof r.version, "2.0.0");
    struct aloft_pull *job = aloft_idf_pull_new();
    assert_non_null(job);
    aloft_idf_lock(dev);
    assert_int_equal(aloft_pull_start(&dev->agent, job, &r), 0);
    aloft_idf_unlock(dev);
    assert_int_equal(aloft_idf_pull_run(dev, job), 0); /* installed */
    free(job);
    assert_int_equal(server.requests, 2);
    assert_int_equal(server.ranged, 1);
    unsigned long from = 0;
    assert_int_equal(sscanf(server.range, "bytes=%lu-", &from), 1);
    assert_true(from > 0 && from <= DROP_AT);
    assert_true(fake_idf_dev_wait_restart(5000));
    char label[17];
    assert_int_equal(fake_idf_dev_next_boot(label), 0);
    assert_string_equal(label, "ota_1");
}

static char events[64];
static int headers;

static esp_err_t record(esp_http_client_event_t *e)
{
    static const char names[] = "EcsHDFdR"; /* by esp_http_client_event_id_t */
    if (e->event_id == HTTP_EVENT_ON_HEADER) {
        headers++;
        if (events[strlen(events) - 1] == 'H')
            return ESP_OK; /* one letter for the run of headers */
    }
    size_t n = strlen(events);
    if (n + 1 < sizeof events && (e->event_id != HTTP_EVENT_ON_DATA || events[n - 1] != 'D'))
        events[n] = names[e->event_id];
    return ESP_OK;
}

/* ESP-IDF's order: connected, headers sent, each header, the data, finish,
 * disconnected. */
static void test_events(void **state)
{
    (void)state;
    memset(events, 0, sizeof events);
    events[0] = '^';
    const esp_http_client_config_t cfg = {.url = server.url, .event_handler = record};
    esp_http_client_handle_t c = esp_http_client_init(&cfg);
    assert_non_null(c);
    assert_int_equal(esp_http_client_perform(c), ESP_OK);
    assert_int_equal(esp_http_client_get_status_code(c), 200);
    assert_int_equal(esp_http_client_cleanup(c), ESP_OK);
    assert_string_equal(events, "^csHDFd");
    assert_true(headers >= 3); /* ETag, Accept-Ranges, Content-Length at least */
}

/* HTTPS to a server that speaks plain HTTP: the handshake fails at open,
 * with esp-tls's error; with no CA at all it does not even connect. */
static void test_tls_failure(void **state)
{
    (void)state;
    char url[sizeof server.url + 1] = "https://"; /* one more letter than http:// */
    size_t n = strlen(server.url + 7);
    n = n < sizeof url - 9 ? n : sizeof url - 9;
    memcpy(url + 8, server.url + 7, n);
    url[8 + n] = 0;
    const esp_http_client_config_t cfg = {.url = url, .cert_pem = "-----BEGIN CERTIFICATE-----\n", .timeout_ms = 3000};
    esp_http_client_handle_t c = esp_http_client_init(&cfg);
    assert_non_null(c);
    assert_int_equal(esp_http_client_open(c, 0), ESP_ERR_HTTP_CONNECT);
    int code = 0, flags = 0;
    assert_int_not_equal(esp_http_client_get_and_clear_last_tls_error(c, &code, &flags), ESP_OK);
    assert_int_equal(esp_http_client_get_and_clear_last_tls_error(c, &code, &flags), ESP_OK); /* cleared */
    esp_http_client_cleanup(c);
    const esp_http_client_config_t none = {.url = url};
    c = esp_http_client_init(&none);
    assert_int_equal(esp_http_client_open(c, 0), ESP_ERR_HTTP_CONNECT);
    esp_http_client_cleanup(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropped_download_resumes),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_tls_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
