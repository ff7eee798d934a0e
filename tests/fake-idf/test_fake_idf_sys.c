/* fake-idf: the log, error names, timers, tasks, notifications, mutexes and
 * the restart behave as the glue relies on ESP-IDF's to behave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "esp_attr.h"
#include "esp_err.h"
#include "esp_mac.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"

static RTC_NOINIT_ATTR uint32_t rtc_word;
static volatile int fired;

static void on_timer(void *arg)
{
    fired += *(int *)arg;
}

static void test_timer_once_and_stop(void **state)
{
    (void)state;
    int one = 1;
    esp_timer_handle_t t;
    const esp_timer_create_args_t args = {.callback = on_timer, .arg = &one, .name = "t"};
    assert_int_equal(esp_timer_create(&args, &t), ESP_OK);
    assert_int_equal(esp_timer_stop(t), ESP_ERR_INVALID_STATE); /* not running */
    assert_int_equal(esp_timer_start_once(t, 20000), ESP_OK);
    assert_int_equal(esp_timer_start_once(t, 20000), ESP_ERR_INVALID_STATE); /* running already */
    int64_t t0 = esp_timer_get_time();
    while (!fired && esp_timer_get_time() - t0 < 2000000)
        vTaskDelay(1);
    assert_int_equal(fired, 1);
    assert_true(esp_timer_get_time() - t0 >= 15000);
    assert_int_equal(esp_timer_start_once(t, 50000), ESP_OK);
    assert_int_equal(esp_timer_stop(t), ESP_OK);
    vTaskDelay(pdMS_TO_TICKS(100));
    assert_int_equal(fired, 1); /* stopped: never fired again */
}

static volatile uint32_t got_bits, got_again = 99;
static void waiter(void *arg)
{
    uint32_t bits = 0;
    (void)arg;
    vTaskDelay(pdMS_TO_TICKS(50)); /* both notifications arrive before the wait */
    if (xTaskNotifyWait(0, UINT32_MAX, &bits, pdMS_TO_TICKS(1000)) == pdTRUE)
        got_bits = bits;
    got_again = (uint32_t)xTaskNotifyWait(0, UINT32_MAX, &bits, pdMS_TO_TICKS(30)); /* nothing more */
    vTaskDelete(NULL);
}

static void test_task_notify(void **state)
{
    (void)state;
    TaskHandle_t t = NULL;
    assert_int_equal(xTaskCreate(waiter, "waiter", 4096, NULL, tskIDLE_PRIORITY + 1, &t), pdPASS);
    assert_non_null(t);
    xTaskNotify(t, 0x2, eSetBits);
    xTaskNotify(t, 0x4, eSetBits);
    for (int i = 0; i < 100 && got_again == 99; i++)
        vTaskDelay(pdMS_TO_TICKS(10));
    assert_int_equal(got_bits, 0x6);
    assert_int_equal(got_again, pdFALSE);
}

static SemaphoreHandle_t mutex;
static void holder(void *arg)
{
    (void)arg;
    xSemaphoreTake(mutex, portMAX_DELAY);
    vTaskDelay(pdMS_TO_TICKS(200));
    xSemaphoreGive(mutex);
    vTaskDelete(NULL);
}

static void test_mutex_timeout(void **state)
{
    (void)state;
    assert_non_null(mutex = xSemaphoreCreateMutex());
    assert_int_equal(xTaskCreate(holder, "holder", 4096, NULL, tskIDLE_PRIORITY + 1, NULL), pdPASS);
    vTaskDelay(pdMS_TO_TICKS(50));
    TickType_t t0 = xTaskGetTickCount();
    assert_int_equal(xSemaphoreTake(mutex, pdMS_TO_TICKS(30)), pdFALSE);
    assert_true(xTaskGetTickCount() - t0 >= 2);
    assert_int_equal(xSemaphoreTake(mutex, portMAX_DELAY), pdTRUE);
    assert_int_equal(xSemaphoreGive(mutex), pdTRUE);
}

static void test_names_mac_random(void **state)
{
    (void)state;
    uint8_t mac[6], a[32] = {0}, b[32] = {0};
    assert_string_equal(esp_err_to_name(ESP_ERR_INVALID_STATE), "ESP_ERR_INVALID_STATE");
    assert_string_equal(esp_err_to_name(12345), "UNKNOWN ERROR");
    setenv("FAKE_IDF_MAC", "AA:BB:CC:DD:EE:0F", 1);
    assert_int_equal(esp_read_mac(mac, ESP_MAC_WIFI_STA), ESP_OK);
    assert_memory_equal(mac, ((uint8_t[]){0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x0F}), 6);
    unsetenv("FAKE_IDF_MAC");
    esp_fill_random(a, sizeof a);
    esp_fill_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
}

/* A restart re-executes this program: the new process sees a software
 * reset and the RTC memory of the old one. */
static void test_restart(void **state)
{
    (void)state;
    assert_int_equal(esp_reset_reason(), ESP_RST_POWERON);
    pid_t pid = fork();
    if (pid == 0) {
        rtc_word = 0xA10F7B01u;
        setenv("TEST_FAKE_IDF_RESTARTED", "1", 1);
        esp_restart();
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 42);
}

int main(void)
{
    if (getenv("TEST_FAKE_IDF_RESTARTED"))
        return esp_reset_reason() == ESP_RST_SW && rtc_word == 0xA10F7B01u ? 42 : 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_once_and_stop), cmocka_unit_test(test_task_notify),
        cmocka_unit_test(test_mutex_timeout),       cmocka_unit_test(test_names_mac_random),
        cmocka_unit_test(test_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
