/* The frontend A/B update (PROTOCOLS.md §2) on a real node: upload a
 * www.bin made with `aloft mkfs`, the node restarts serving it from the
 * other slot (index.html, a .gz file with Content-Encoding and its type);
 * rollback returns to the previous slot; a body that is not LittleFS or
 * does not fit is refused and nothing changes. */
#include "e2e.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static struct e2e_node node;
static char www1[300], www2[300];
static const char js[] = "console.log('frontend two');\n";

static void put(const char *dir, const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    e2e_file_write(path, text, strlen(text));
}

static int setup(void **state)
{
    (void)state;
    snprintf(www1, sizeof www1, "%s", e2e_path("www1"));
    snprintf(www2, sizeof www2, "%s", e2e_path("www2"));
    assert_int_equal(mkdir(www1, 0755), 0);
    assert_int_equal(mkdir(www2, 0755), 0);
    put(www1, "index.html", "<!doctype html><h1>frontend one</h1>\n");
    put(www2, "index.html", "<!doctype html><h1>frontend two</h1><script src=x.js></script>\n");
    put(www2, "style.css", "h1 { color: teal }\n");
    put(www2, "x.js", js);
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "gzip -n -9 '%s/x.js'", www2); /* leaves only x.js.gz */
    assert_int_equal(system(cmd), 0);
    const char *mkfs[] = {"aloft", "mkfs", www2, "-o", e2e_path("www2.bin"), NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);

    const char *fw = e2e_path("fe-fw.bin");
    e2e_image(fw, "esp32s3", "1.0.0", 0, NULL);
    e2e_node_init(&node, "frontend");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", fw, "--www", www1, NULL};
    return e2e_node_start(&node, args);
}

static int active_slot(void)
{
    cJSON *st = e2e_get_json(&node, "/api/ota/status");
    int slot = (int)e2e_jnum(st, "active_slot");
    cJSON *fw = cJSON_GetObjectItem(st, "firmware");
    assert_string_equal(e2e_jstr(fw, "version"), "1.0.0");
    assert_int_equal((int)e2e_jnum(fw, "www_slot"), slot);
    cJSON_Delete(st);
    return slot;
}

static bool slot_valid(int i)
{
    cJSON *st = e2e_get_json(&node, "/api/ota/status");
    cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "slots"), i);
    char label[8];
    snprintf(label, sizeof label, "www_%d", i);
    assert_string_equal(e2e_jstr(s, "label"), label);
    assert_int_equal((int)e2e_jnum(s, "size"), 0x100000);
    bool valid = cJSON_IsTrue(cJSON_GetObjectItem(s, "valid"));
    cJSON_Delete(st);
    return valid;
}

/* GET path; the body must contain want. */
static void get_has(const char *path, const char *want, struct e2e_http *r, const char *const extra[])
{
    char url[200];
    snprintf(url, sizeof url, "%s%s", node.url, path);
    const char *args[8];
    size_t k = 0;
    for (size_t i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    args[k++] = url;
    args[k] = NULL;
    assert_int_equal(e2e_curl(r, args), 200);
    if (want && !strstr(r->body, want))
        fprintf(stderr, "GET %s: '%s' has no '%s'\n", path, r->body, want);
    if (want)
        assert_non_null(strstr(r->body, want));
}

static void test_upload_serves_the_new_files_from_the_other_slot(void **state)
{
    (void)state;
    struct e2e_http r;
    assert_int_equal(active_slot(), 0);
    get_has("/", "frontend one", &r, NULL);
    e2e_http_free(&r);
    uint32_t fw_off, fw_size;
    e2e_part(&node, "ota_0", &fw_off, &fw_size);
    uint8_t *fw = e2e_flash_read(&node, fw_off, fw_size);
    uint8_t *od = e2e_flash_read(&node, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);

    assert_int_equal(e2e_upload(&node, "/api/ota/frontend", e2e_path("www2.bin"), &r, NULL), 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_int_equal(active_slot(), 1);
    assert_true(slot_valid(0));
    assert_true(slot_valid(1));

    get_has("/", "frontend two", &r, NULL);
    assert_true(e2e_http_header(&r, "Content-Type", "text/html"));
    e2e_http_free(&r);
    get_has("/style.css", "teal", &r, NULL);
    assert_true(e2e_http_header(&r, "Content-Type", "text/css"));
    e2e_http_free(&r);

    /* x.js exists only as x.js.gz: served compressed, typed as JavaScript */
    size_t gz_len;
    char gz_path[400];
    snprintf(gz_path, sizeof gz_path, "%s/x.js.gz", www2);
    uint8_t *gz = e2e_file_read(gz_path, &gz_len);
    const char *accept[] = {"-H", "Accept-Encoding: gzip", NULL};
    get_has("/x.js", NULL, &r, accept);
    assert_true(e2e_http_header(&r, "Content-Encoding", "gzip"));
    assert_true(e2e_http_header(&r, "Content-Type", "text/javascript"));
    assert_int_equal(r.len, gz_len);
    assert_memory_equal(r.body, gz, gz_len);
    e2e_http_free(&r);
    const char *decoded[] = {"--compressed", NULL};
    get_has("/x.js", "console.log('frontend two');", &r, decoded);
    e2e_http_free(&r);
    free(gz);

    char url[200];
    snprintf(url, sizeof url, "%s/missing.html", node.url);
    const char *missing[] = {url, NULL};
    assert_int_equal(e2e_curl(&r, missing), 404);
    e2e_http_free(&r);

    /* the firmware and its otadata are not touched by a frontend update */
    uint8_t *fw_now = e2e_flash_read(&node, fw_off, fw_size);
    uint8_t *od_now = e2e_flash_read(&node, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    assert_memory_equal(fw_now, fw, fw_size);
    assert_memory_equal(od_now, od, E2E_OTADATA_SIZE);
    free(fw_now);
    free(od_now);
    free(fw);
    free(od);
}

static void rollback_to(int slot, const char *want)
{
    char url[200];
    snprintf(url, sizeof url, "%s/api/ota/frontend/rollback", node.url);
    const char *args[] = {"-X", "POST", "-H", "Content-Type: application/json", "-H", node.auth, url, NULL};
    struct e2e_http r;
    assert_int_equal(e2e_curl(&r, args), 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_int_equal((int)e2e_jnum(j, "active_slot"), slot);
    cJSON_Delete(j);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_int_equal(active_slot(), slot);
    get_has("/", want, &r, NULL);
    e2e_http_free(&r);
}

static void test_rollback_returns_to_the_previous_slot(void **state)
{
    (void)state;
    rollback_to(0, "frontend one");
    rollback_to(1, "frontend two");
    rollback_to(0, "frontend one");
}

/* Refused: nvs, the active slot and what is served stay as they were. */
static void refused(const char *file, int want, const char *code, bool before_write)
{
    int slot = active_slot();
    uint32_t off, size, other_off, other_size;
    char label[8];
    snprintf(label, sizeof label, "www_%d", slot);
    e2e_part(&node, label, &off, &size);
    snprintf(label, sizeof label, "www_%d", !slot);
    e2e_part(&node, label, &other_off, &other_size);
    uint8_t *nvs = e2e_flash_read(&node, E2E_NVS_OFF, E2E_NVS_SIZE);
    uint8_t *active = e2e_flash_read(&node, off, size);
    uint8_t *other = e2e_flash_read(&node, other_off, other_size);
    unsigned boots = node.serving;

    struct e2e_http r;
    int got = e2e_upload(&node, "/api/ota/frontend", file, &r, NULL);
    if (got != want || strcmp(e2e_http_error(&r), code))
        fprintf(stderr, "expected %d %s, got %d: %s\n", want, code, got, r.body);
    assert_int_equal(got, want);
    assert_string_equal(e2e_http_error(&r), code);
    e2e_http_free(&r);
    e2e_sleep_ms(300); /* a restart would have begun by now */
    assert_int_equal(e2e_log_count(&node, "http: serving on"), boots);

    uint8_t *nvs_now = e2e_flash_read(&node, E2E_NVS_OFF, E2E_NVS_SIZE);
    uint8_t *active_now = e2e_flash_read(&node, off, size);
    assert_memory_equal(nvs_now, nvs, E2E_NVS_SIZE);
    assert_memory_equal(active_now, active, size);
    if (before_write) {
        uint8_t *other_now = e2e_flash_read(&node, other_off, other_size);
        assert_memory_equal(other_now, other, other_size);
        free(other_now);
    }
    free(nvs_now);
    free(active_now);
    free(nvs);
    free(active);
    free(other);
    assert_int_equal(active_slot(), slot);
    get_has("/", "frontend one", &r, NULL);
    e2e_http_free(&r);
}

static void test_not_littlefs_or_too_large_is_refused(void **state)
{
    (void)state;
    assert_int_equal(active_slot(), 0);
    size_t len = 0x100000 + 4096;
    uint8_t *junk = malloc(len);
    aloft_test_fill(junk, len, 42);
    const char *big = e2e_path("www-big.bin");
    e2e_file_write(big, junk, len);
    refused(big, 413, "too_large", true);
    const char *random = e2e_path("www-random.bin");
    e2e_file_write(random, junk, 64 * 1024);
    refused(random, 400, "not_littlefs", false);
    /* a firmware image is not a frontend */
    refused(e2e_path("fe-fw.bin"), 400, "not_littlefs", false);
    /* the frontend taken afterwards is the good one */
    struct e2e_http r;
    assert_int_equal(e2e_upload(&node, "/api/ota/frontend", e2e_path("www2.bin"), &r, NULL), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_int_equal(active_slot(), 1);
    get_has("/", "frontend two", &r, NULL);
    e2e_http_free(&r);
    free(junk);
}

int main(void)
{
    e2e_init(6);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_serves_the_new_files_from_the_other_slot),
        cmocka_unit_test(test_rollback_returns_to_the_previous_slot),
        cmocka_unit_test(test_not_littlefs_or_too_large_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, e2e_teardown);
}
