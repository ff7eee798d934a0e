/* aloftd end to end: the device inventory at fleet size, on SQLite
 * (test_aloftd_devices) and PostgreSQL (test_aloftd_devices_pg). 120
 * devices check in; GET /api/devices?limit= pages them with the count of
 * all that pass the filters (version, state, address, last seen), sorted
 * by the column asked for with the MAC breaking ties, the pages never
 * overlapping; /api/platforms/<p>/versions counts them by version; a
 * device's page has its history: check-ins that changed something, offers,
 * reports, at most 32 kept, newest first; bad parameters are 400. Deep
 * pages: every sort walked page by page after the "next" of the page
 * before (keyset) gives what offsets give, each device once; the whole
 * list (no limit) carries each device's own last report. */
#include "aloftd_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 120

static struct aloftd_proc srv;
static char image[300];

static void mac_of(int i, char mac[18])
{
    snprintf(mac, 18, "24:0A:C4:33:%02X:%02X", (unsigned)(i >> 8) & 255u, (unsigned)i & 255u);
}

/* A check-in of device i on version ver; free space as given ("" : none). */
static int checkin(int i, const char *ver, const char *free_space)
{
    char mac[18], path[120], h_mac[60], h_free[60];
    mac_of(i, mac);
    snprintf(path, sizeof path, "/update?dev=inv&ver=%s", ver);
    snprintf(h_mac, sizeof h_mac, "x-ESP32-STA-MAC: %s", mac);
    snprintf(h_free, sizeof h_free, "x-ESP32-free-space: %s", free_space);
    const char *args[] = {"-H", "User-Agent: ESP32-http-Update", "-H", h_mac, "-H", h_free, "-o", "/dev/null", NULL};
    struct e2e_http r;
    int code = aloftd_get(&srv, &r, path, args);
    e2e_http_free(&r);
    return code;
}

static int count_of(const char *query)
{
    char path[300];
    snprintf(path, sizeof path, "/api/devices?platform=inv&limit=1%s", query);
    cJSON *j = aloftd_json(&srv, path);
    int n = (int)cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble;
    cJSON_Delete(j);
    return n;
}

static void expect_400(const char *path)
{
    struct e2e_http r;
    assert_int_equal(aloftd_admin_get(&srv, &r, path), 400);
    assert_string_equal(e2e_http_error(&r), "bad_parameter");
    e2e_http_free(&r);
}

/* GET path with the admin token, in this process (hundreds of pages): its JSON. */
static cJSON *page_json(const char *path)
{
    const char *headers[] = {srv.auth, NULL};
    struct e2e_http r;
    assert_int_equal(aloftd_fetch(&srv, &r, path, headers, NULL), 200);
    cJSON *j = cJSON_Parse(r.body);
    e2e_http_free(&r);
    assert_non_null(j);
    return j;
}

/* Every device of platform inv, sorted by sort in order, in pages of 7:
 * by offset, or after each page's "next". Their MACs into macs. */
static void walk(const char *sort, const char *order, bool keyset, char macs[N][18])
{
    int seen = 0, off = 0;
    char next[200] = "";
    for (int pages = 0; pages <= N / 7 + 1; pages++) {
        char path[400];
        snprintf(path, sizeof path, "/api/devices?platform=inv&limit=7&sort=%s&order=%s%s%s", sort, order,
                 keyset ? (next[0] ? "&after=" : "") : "&offset=", keyset ? next : "");
        if (!keyset)
            snprintf(path + strlen(path), sizeof path - strlen(path), "%d", off);
        cJSON *j = page_json(path);
        assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble, N);
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(j, "devices"))
        {
            assert_true(seen < N);
            snprintf(macs[seen++], 18, "%s", e2e_jstr(d, "mac"));
        }
        off += 7;
        const cJSON *nx = cJSON_GetObjectItemCaseSensitive(j, "next");
        bool more = cJSON_IsString(nx);
        if (more) { /* the cursor's characters, for the query */
            char *esc = next;
            for (const char *c = nx->valuestring; *c && esc < next + sizeof next - 4; c++)
                esc += *c == ':' || *c == ',' ? snprintf(esc, 4, "%%%02X", (unsigned char)*c) : (*esc = *c, 1);
            *esc = 0;
        }
        cJSON_Delete(j);
        if (seen == N) { /* a last full page still says "next"; the one after it is empty */
            if (more && keyset) {
                snprintf(path, sizeof path, "/api/devices?platform=inv&limit=7&sort=%s&order=%s&after=%s", sort,
                         order, next);
                j = page_json(path);
                assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "devices")), 0);
                assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "next")));
                cJSON_Delete(j);
            }
            return;
        }
        assert_true(more);
    }
    fail_msg("%s %s: %d devices of %d", sort, order, seen, N);
}

static void test_inventory(void **state)
{
    (void)state;
    aloftd_init(&srv, "devices");
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    snprintf(image, sizeof image, "%s", e2e_path("inv-2.0.0.bin"));
    e2e_image(image, "esp32s3", "2.0.0", 131072, NULL);
    struct e2e_http r;
    assert_int_equal(aloftd_upload(&srv, &r, image, "?platform=inv", NULL), 201);
    e2e_http_free(&r);

    /* versions: i % 3 == 0 runs 2.0.0 (304), 1 runs 1.0.0 and is offered
     * (200), 2 runs 1.5.0 with no room for it (304) */
    const char *ver[] = {"2.0.0", "1.0.0", "1.5.0"};
    for (int i = 0; i < N; i++)
        assert_int_equal(checkin(i, ver[i % 3], i % 3 == 2 ? "100" : "4194304"), i % 3 == 1 ? 200 : 304);

    /* by version, most first (ties by version) */
    cJSON *v = aloftd_json(&srv, "/api/platforms/inv/versions");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(v, "versions");
    assert_int_equal(cJSON_GetArraySize(vs), 3);
    const char *by_count[] = {"1.0.0", "1.5.0", "2.0.0"};
    for (int k = 0; k < 3; k++) {
        const cJSON *e = cJSON_GetArrayItem(vs, k);
        assert_string_equal(e2e_jstr(e, "version"), by_count[k]);
        assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(e, "devices")->valuedouble, N / 3);
    }
    cJSON_Delete(v);

    /* pages of 25 in MAC order: all of them, once each, in order */
    char prev[18] = "";
    int seen = 0;
    for (int off = 0; off < N; off += 25) {
        char path[200];
        snprintf(path, sizeof path, "/api/devices?platform=inv&limit=25&offset=%d", off);
        cJSON *j = aloftd_json(&srv, path);
        assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble, N);
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(j, "devices"))
        {
            char want[18];
            mac_of(seen++, want);
            assert_string_equal(e2e_jstr(d, "mac"), want);
            assert_true(strcmp(prev, want) < 0);
            snprintf(prev, sizeof prev, "%s", want);
        }
        cJSON_Delete(j);
    }
    assert_int_equal(seen, N);

    /* sorted by version, descending: the 2.0.0 devices first, by MAC descending within */
    cJSON *j = aloftd_json(&srv, "/api/devices?platform=inv&limit=50&sort=version&order=desc");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "devices");
    assert_int_equal(cJSON_GetArraySize(list), 50);
    char want[18];
    mac_of(N - 3, want); /* the last i with i % 3 == 0 */
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(list, 0), "mac"), want);
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(list, 39), "version"), "2.0.0");
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(list, 40), "version"), "1.5.0");
    cJSON_Delete(j);

    /* deep pages: after the page before, by index, the same as by offset */
    static const char *const walks[][2] = {{"mac", "asc"},       {"mac", "desc"}, {"version", "desc"},
                                           {"last_seen", "asc"}, {"ip", "asc"},   {"status", "desc"}};
    static char by_offset[N][18], by_key[N][18];
    for (size_t w = 0; w < sizeof walks / sizeof walks[0]; w++) {
        walk(walks[w][0], walks[w][1], false, by_offset);
        walk(walks[w][0], walks[w][1], true, by_key);
        assert_memory_equal(by_offset, by_key, sizeof by_key);
        for (int a = 0; a < N; a++) /* each device once */
            for (int b = a + 1; b < N; b++)
                assert_string_not_equal(by_key[a], by_key[b]);
    }

    /* filters, counted by the database */
    assert_int_equal(count_of("&version=1.5.0"), N / 3);
    assert_int_equal(count_of("&state=offered"), N / 3);
    assert_int_equal(count_of("&state=current"), 2 * N / 3);
    assert_int_equal(count_of("&state=refused"), 0);
    assert_int_equal(count_of("&state=unreported"), N);
    assert_int_equal(count_of("&state=offered&version=2.0.0"), 0);
    assert_int_equal(count_of("&address=127.0.0.1"), N); /* curl's address */
    assert_int_equal(count_of("&address=10."), 0);
    assert_int_equal(count_of("&seen_within=3600"), N);
    assert_int_equal(count_of("&silent_for=3600"), 0);
    expect_400("/api/devices?platform=inv&limit=0");
    expect_400("/api/devices?platform=inv&limit=1001");
    expect_400("/api/devices?platform=inv&limit=10&sort=password");
    expect_400("/api/devices?platform=inv&limit=10&state=sideways");
    expect_400("/api/devices?platform=inv&limit=10&order=up");
    expect_400("/api/devices?platform=inv&limit=10&offset=-1");
    expect_400("/api/devices?platform=inv&limit=10&after=nonsense");
    expect_400("/api/devices?platform=inv&limit=10&sort=last_seen&after=24%3A0A%3AC4%3A33%3A00%3A01%2Cyesterday");
    expect_400("/api/devices?platform=inv&limit=10&sort=version&after=24%3A0A%3AC4%3A33%3A00%3A01");

    /* a device's history: the offer, then what changed; a check-in like the one before is none */
    assert_int_equal(checkin(1, "2.0.0", "4194304"), 304); /* updated */
    assert_int_equal(checkin(1, "2.0.0", "4194304"), 304); /* the same again */
    char mac[18];
    mac_of(1, mac);
    char path[100];
    snprintf(path, sizeof path, "/api/devices/%s", mac);
    j = aloftd_json(&srv, path);
    assert_string_equal(e2e_jstr(cJSON_GetObjectItemCaseSensitive(j, "device"), "version"), "2.0.0");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "events");
    assert_int_equal(cJSON_GetArraySize(ev), 2);
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 0), "kind"), "checkin");
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 0), "version"), "2.0.0");
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 1), "kind"), "offer");
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 1), "detail"), "offered 2.0.0");
    cJSON_Delete(j);
    /* bounded: 40 changes keep the newest 32 */
    for (int k = 0; k < 40; k++) {
        char vk[16];
        snprintf(vk, sizeof vk, "1.%d.0", k);
        checkin(1, vk, "100");
        cJSON_Delete(aloftd_json(&srv, path)); /* written before the next: each one an event */
    }
    j = aloftd_json(&srv, path);
    ev = cJSON_GetObjectItemCaseSensitive(j, "events");
    assert_int_equal(cJSON_GetArraySize(ev), 32);
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 0), "version"), "1.39.0");
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 31), "version"), "1.8.0");
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ev, 0), "seq")->valuedouble, 42);
    cJSON_Delete(j);
    /* a report (signed as the device signs it): in the history and in the filters */
    mac_of(4, mac);
    char body[160], auth[65], rpath[200];
    snprintf(body, sizeof body, "{\"version\": \"1.0.0\", \"target\": \"2.0.0\", \"result\": \"rolled_back\"}");
    aloftd_report_auth(&srv, mac, body, auth);
    snprintf(rpath, sizeof rpath, "/api/devices/%s/report?auth=%s", mac, auth);
    const char *post[] = {"-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body, NULL};
    assert_int_equal(aloftd_get(&srv, &r, rpath, post), 200);
    e2e_http_free(&r);
    assert_int_equal(count_of("&state=rolled_back"), 1);
    assert_int_equal(count_of("&state=unreported"), N - 1);
    snprintf(path, sizeof path, "/api/devices/%s", mac);
    j = aloftd_json(&srv, path);
    ev = cJSON_GetObjectItemCaseSensitive(j, "events");
    assert_int_equal(cJSON_GetArraySize(ev), 2);
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 0), "kind"), "report");
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(ev, 0), "detail"), "rolled_back");
    assert_string_equal(e2e_jstr(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "device"), "report"), "result"), "rolled_back");
    cJSON_Delete(j);
    /* the whole list: each device with its own last report, the others none */
    j = aloftd_json(&srv, "/api/devices?platform=inv");
    int listed = 0;
    const cJSON *dev;
    cJSON_ArrayForEach(dev, cJSON_GetObjectItemCaseSensitive(j, "devices"))
    {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(dev, "report");
        listed++;
        if (!strcmp(e2e_jstr(dev, "mac"), mac))
            assert_string_equal(e2e_jstr(rep, "result"), "rolled_back");
        else
            assert_true(cJSON_IsNull(rep));
    }
    assert_int_equal(listed, N);
    cJSON_Delete(j);
    assert_int_equal(aloftd_admin_get(&srv, &r, "/api/devices/24:0A:C4:99:99:99"), 404);
    e2e_http_free(&r);
    assert_int_equal(aloftd_stop(&srv), 0);
}

int main(void)
{
    e2e_init(182);
    if (aloftd_db_init("aloftd inventory tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_inventory, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
