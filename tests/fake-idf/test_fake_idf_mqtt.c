/* The glue's MQTT (mqtt.c) over the esp-mqtt fake and a real mosquitto
 * broker (tests/e2e/mqtt_harness.c): the retained state at connection, a
 * trigger on the device's command topic that starts a pull, installed and
 * booted; and, to a client of its own, the state retained and a message
 * longer than its buffer split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aloft/mqtt.h"
#include "idfdev.h"
#include "imgserver.h"
#include "mqtt_client.h"
#include "mqtt_harness.h"
#include "testdev.h"
#include "testflash.h"

static struct mqtt_broker broker;
static struct img_server server;
static uint8_t *image;
static struct aloft_idf *dev;
static struct aloft_mqtt_topics topics;

static int setup(void **state)
{
    (void)state;
    size_t len;
    static char uri[64]; /* the glue keeps the pointer, as aloft_config_t's strings are kept */
    if (fake_idf_test_flash("fake-idf-mqtt.img") || !(image = aloft_test_image("esp32c3", "2.0.0", 0, NULL, &len)) ||
        img_server_start(&server, image, len, 0))
        return -1;
    mqtt_broker_init(&broker, "fake-idf-broker", NULL, NULL);
    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", "test/#");
    snprintf(uri, sizeof uri, "mqtt://%s", broker.addr);
    if (!(dev = fake_idf_dev_start("mqtt-dev", uri)))
        return -1;
    aloft_mqtt_topics(&dev->agent, &topics);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mqtt_sub_stop();
    mqtt_broker_stop(&broker);
    img_server_stop(&server);
    free(image);
    return 0;
}

static void test_state_then_trigger(void **state)
{
    (void)state;
    unsigned from = 0;
    cJSON *j = mqtt_sub_wait(&from, topics.state, "state", "idle", MQTT_WAIT_MS);
    assert_non_null(j);
    cJSON_Delete(j);
    char trigger[256];
    snprintf(trigger, sizeof trigger, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"version\":\"2.0.0\",\"id\":\"t1\"}",
             server.url);
    mqtt_publish(topics.device, trigger, false);
    assert_true(fake_idf_dev_wait_restart(20000));
    assert_int_equal(server.requests, 1);
    j = mqtt_sub_wait(&from, topics.state, "state", "restarting", MQTT_WAIT_MS);
    assert_non_null(j);
    assert_string_equal(e2e_jstr(j, "trigger"), "t1");
    cJSON_Delete(j);
    char label[17];
    assert_int_equal(fake_idf_dev_next_boot(label), 0);
    assert_string_equal(label, "ota_1");
}

/* A client of the test's own with a 256-byte buffer, which also finds
 * the device's state retained. */
static int subscribed, state_retained, in_state;
static int pieces, offsets_ok, first_topic_ok, total;

static void on_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg, (void)base;
    esp_mqtt_event_t *e = data;
    if (id == MQTT_EVENT_CONNECTED) {
        esp_mqtt_client_subscribe(e->client, "test/long", 1);
        esp_mqtt_client_subscribe(e->client, topics.state, 1);
    }
    if (id == MQTT_EVENT_SUBSCRIBED)
        subscribed++;
    if (id != MQTT_EVENT_DATA)
        return;
    if (!e->current_data_offset) /* the first piece names the topic */
        in_state = e->topic_len == (int)strlen(topics.state) && !memcmp(e->topic, topics.state, strlen(topics.state));
    if (in_state) {
        state_retained = e->retain;
        return;
    }
    if (pieces == 0)
        first_topic_ok = e->topic_len == 9 && !memcmp(e->topic, "test/long", 9);
    offsets_ok = (pieces == 0 || (offsets_ok && !e->topic)) && e->current_data_offset == total &&
                 e->total_data_len == 3000;
    total += e->data_len;
    pieces++;
}

static void test_retained_state_and_split(void **state)
{
    (void)state;
    char uri[64], payload[3001];
    snprintf(uri, sizeof uri, "mqtt://%s", broker.addr);
    const esp_mqtt_client_config_t cfg = {.broker.address.uri = uri, .credentials.client_id = "split", .buffer.size = 256};
    esp_mqtt_client_handle_t c = esp_mqtt_client_init(&cfg);
    assert_non_null(c);
    assert_int_equal(esp_mqtt_client_register_event(c, MQTT_EVENT_ANY, on_event, NULL), ESP_OK);
    assert_int_equal(esp_mqtt_client_start(c), ESP_OK);
    for (int i = 0; i < 100 && (subscribed < 2 || !state_retained); i++)
        vTaskDelay(pdMS_TO_TICKS(50));
    assert_int_equal(subscribed, 2);
    assert_true(state_retained);
    memset(payload, 'x', 3000);
    payload[3000] = 0;
    mqtt_publish("test/long", payload, false);
    for (int i = 0; i < 100 && total < 3000; i++)
        vTaskDelay(pdMS_TO_TICKS(50));
    assert_int_equal(total, 3000);
    assert_true(pieces >= 12); /* 3000 bytes in 256-byte bufferfuls */
    assert_true(first_topic_ok);
    assert_true(offsets_ok);
    assert_int_equal(esp_mqtt_client_disconnect(c), ESP_OK);
    assert_int_equal(esp_mqtt_client_destroy(c), ESP_OK);
}

int main(void)
{
    e2e_init(160);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_then_trigger),
        cmocka_unit_test(test_retained_state_and_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
