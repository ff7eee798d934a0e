/* aloft-node --mdns: the device announces its ArduinoOTA service as the
 * Arduino IDE looks for it (DNS-SD _arduino._tcp), asked by a real client,
 * dig (Debian's bind9-dnsutils), as a legacy unicast resolver on the node's
 * own loopback address (also against the ESP-IDF example over the fakes,
 * CONFIG_ALOFT_MDNS): PTR, SRV, TXT and A with their exact values, TTLs
 * of at most 10 s, auth_upload following the PSK, the name from the MAC
 * or --mdns-name; a node without --mdns answers nothing; --mdns without
 * --espota is refused; garbage datagrams get no answer and leave it
 * answering. */
#include "e2e.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct e2e_node node;
static char ip[16], fw[300];
static int espota_port, mdns_port;

static int setup(void **state)
{
    (void)state;
    snprintf(fw, sizeof fw, "%s", e2e_path("v1.bin"));
    e2e_image(fw, "esp32s3", "1.0.0", 0, NULL);
    return 0;
}

/* Start the node (with its PSK or none) with --espota and --mdns on its
 * own address (ports: the HTTP port's number and the next; the ESP-IDF
 * example's mDNS is built in, on port 5353), the extra args after them. */
static void start(const char *name, bool psk, const char *const extra[])
{
    e2e_node_init(&node, name);
    if (!psk)
        node.psk[0] = 0;
    snprintf(ip, sizeof ip, "%.*s", (int)(strchr(node.listen, ':') - node.listen), node.listen);
    espota_port = atoi(strchr(node.listen, ':') + 1);
    mdns_port = e2e_example() ? 5353 : espota_port + 1; /* the example's is built in, on its own address */
    static char espota[32], mdns[32];
    snprintf(espota, sizeof espota, "%s:%d", ip, espota_port);
    snprintf(mdns, sizeof mdns, "%s:%d", ip, mdns_port);
    const char *args[24] = {"--create", "--flash-size", "4M", "--firmware", fw, "--espota", espota, "--mdns", mdns};
    size_t k = e2e_example() ? 7 : 9;
    for (size_t i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    assert_int_equal(e2e_node_start(&node, args), 0);
    assert_int_equal(e2e_node_wait_log(&node, "mdns: ", 1, 5000), 0);
}

/* dig, bounded (2 s, one try), against the node's mDNS port, with the
 * options in fmt (NULL-terminated); its output in *out (malloc'd). Returns
 * dig's exit status (9: no answer). */
static int dig(const char *name, const char *type, const char *const fmt[], char **out)
{
    char port[8], server[20];
    snprintf(port, sizeof port, "%d", mdns_port);
    snprintf(server, sizeof server, "@%s", ip);
    const char *out_path = e2e_path("dig.out");
    const char *argv[16] = {"dig", "+time=2", "+tries=1", "-p", port, server};
    size_t k = 6;
    for (size_t i = 0; fmt[i]; i++)
        argv[k++] = fmt[i];
    argv[k++] = name;
    argv[k++] = type;
    pid_t pid = e2e_spawn("dig", argv, out_path, O_TRUNC, true);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    size_t len;
    *out = (char *)e2e_file_read(out_path, &len);
    *out = realloc(*out, len + 1);
    (*out)[len] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *const shortly[] = {"+short", NULL};

/* dig +short: the one answer it prints, without the newline. */
static void short_answer(const char *name, const char *type, const char *want)
{
    char *out;
    assert_int_equal(dig(name, type, shortly, &out), 0);
    out[strcspn(out, "\n")] = 0;
    if (strcmp(out, want))
        fprintf(stderr, "dig %s %s: '%s', want '%s'\n", name, type, out, want);
    assert_string_equal(out, want);
    free(out);
}

static void records(void **state)
{
    (void)state;
    const char *extra[] = {"--mdns-name", "Desk-Lamp", NULL};
    start("mdns", true, extra);
    char srv[80], a[40];
    snprintf(srv, sizeof srv, "0 0 %d desk-lamp.local.", espota_port);
    snprintf(a, sizeof a, "%s", ip);
    short_answer("_arduino._tcp.local", "PTR", "desk-lamp._arduino._tcp.local.");
    short_answer("desk-lamp._arduino._tcp.local", "SRV", srv);
    char txt[120];
    snprintf(txt, sizeof txt, "\"board=%s\" \"tcp_check=no\" \"ssh_upload=no\" \"auth_upload=yes\"", e2e_chip());
    short_answer("desk-lamp._arduino._tcp.local", "TXT", txt);
    short_answer("DESK-LAMP.local", "A", a);
    short_answer("_services._dns-sd._udp.local", "PTR", "_arduino._tcp.local.");

    /* one PTR query brings the rest as additional records, each with a
     * legacy resolver's TTL */
    static const char *const full[] = {"+noall", "+answer", "+additional", NULL};
    char *text;
    assert_int_equal(dig("_arduino._tcp.local", "PTR", full, &text), 0);
    char *out;
    const char *types[] = {"PTR", "SRV", "TXT", "A"};
    unsigned seen = 0;
    char *copy = strdup(text);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128], cls[8], type[8];
        unsigned ttl;
        if (line[0] == ';' || sscanf(line, "%127s %u %7s %7s", name, &ttl, cls, type) != 4)
            continue;
        assert_true(ttl <= 10);
        assert_string_equal(cls, "IN");
        for (unsigned i = 0; i < 4; i++)
            if (!strcmp(type, types[i]))
                seen |= 1u << i;
    }
    if (seen != 15)
        fprintf(stderr, "dig's answer:\n%s\n", text);
    assert_int_equal(seen, 15);
    free(copy);
    free(text);

    /* names that are not this device's: silence, so dig hears nothing */
    assert_int_equal(dig("other._arduino._tcp.local", "SRV", shortly, &out), 9);
    free(out);
    assert_int_equal(dig("desk-lamp.local", "AAAA", shortly, &out), 9);
    free(out);
    e2e_node_stop(&node);
}

static void no_psk_and_the_default_name(void **state)
{
    (void)state;
    const char *extra[] = {"--mac", "24:0a:c4:12:ab:ef", NULL};
    start("nopsk", false, extra);
    char txt[120];
    snprintf(txt, sizeof txt, "\"board=%s\" \"tcp_check=no\" \"ssh_upload=no\" \"auth_upload=no\"", e2e_chip());
    short_answer("aloft-240ac412abef._arduino._tcp.local", "TXT", txt);
    short_answer("_arduino._tcp.local", "PTR", "aloft-240ac412abef._arduino._tcp.local.");
    e2e_node_stop(&node);
}

static void without_mdns_nothing_answers(void **state)
{
    (void)state;
    e2e_simulator_only("a node without --mdns (the example's mDNS is built in)");
    e2e_node_init(&node, "quiet");
    snprintf(ip, sizeof ip, "%.*s", (int)(strchr(node.listen, ':') - node.listen), node.listen);
    espota_port = atoi(strchr(node.listen, ':') + 1);
    mdns_port = espota_port + 1;
    char espota[32];
    snprintf(espota, sizeof espota, "%s:%d", ip, espota_port);
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", fw, "--espota", espota, NULL};
    assert_int_equal(e2e_node_start(&node, args), 0);
    char *out;
    assert_int_equal(dig("_arduino._tcp.local", "PTR", shortly, &out), 9);
    free(out);
    assert_int_equal(e2e_log_count(&node, "mdns: "), 0);
    e2e_node_stop(&node);

    /* and --mdns without --espota is refused before anything happens */
    const char *path = e2e_path("refused.log"), *flash = e2e_path("never.img");
    char exe[300];
    snprintf(exe, sizeof exe, "%s/aloft-node", ALOFT_BIN);
    const char *argv[] = {exe, "--create", "--flash-size", "4M", "--firmware", fw, "--flash", flash, "--mdns", NULL};
    pid_t pid = e2e_spawn(exe, argv, path, O_TRUNC, true);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    size_t len;
    char *msg = (char *)e2e_file_read(path, &len);
    msg = realloc(msg, len + 1);
    msg[len] = 0;
    assert_non_null(strstr(msg, "--mdns announces the ArduinoOTA service: it needs --espota"));
    free(msg);
    assert_int_not_equal(access(flash, F_OK), 0);
}

/* A query for A desk-lamp.local with this id. */
static size_t query(uint8_t *q, uint16_t id)
{
    static const uint8_t body[] = "\0\0\0\0\0\1\0\0\0\0\0\0\11desk-lamp\5local\0\0\1\0\1";
    memcpy(q, body, sizeof body - 1);
    q[0] = (uint8_t)(id >> 8), q[1] = (uint8_t)id;
    return sizeof body - 1;
}

static void garbage_gets_nothing(void **state)
{
    (void)state;
    const char *extra[] = {"--mdns-name", "desk-lamp", NULL};
    start("garbage", true, extra);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mdns_port)};
    inet_pton(AF_INET, ip, &to.sin_addr);
    uint8_t q[1500];
    size_t good = query(q, 1);
    /* random datagrams, every truncation of a good query, a pointer loop,
     * a response: none gets an answer */
    for (int i = 0; i < 200; i++) {
        size_t n = e2e_rand() % sizeof q;
        for (size_t k = 0; k < n; k++)
            q[k] = (uint8_t)e2e_rand();
        sendto(fd, q, n, 0, (struct sockaddr *)&to, sizeof to);
    }
    for (size_t n = 0; n < good; n++) {
        query(q, 2);
        sendto(fd, q, n, 0, (struct sockaddr *)&to, sizeof to);
    }
    query(q, 3);
    q[12] = 0xC0, q[13] = 12; /* the name points at itself */
    sendto(fd, q, good, 0, (struct sockaddr *)&to, sizeof to);
    query(q, 4);
    q[2] = 0x84; /* a response */
    sendto(fd, q, good, 0, (struct sockaddr *)&to, sizeof to);
    /* then good queries (IDs 5..9: a burst may overflow the node's socket
     * buffer, so a few tries): every datagram back answers one of them */
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t r[1500];
    ssize_t got = -1;
    for (uint16_t id = 5; id < 10 && got < 0; id++) {
        query(q, id);
        assert_int_equal(sendto(fd, q, good, 0, (struct sockaddr *)&to, sizeof to), (ssize_t)good);
        got = recv(fd, r, sizeof r, 0);
    }
    assert_true(got > 12);
    assert_in_range(r[0] << 8 | r[1], 5, 9);
    assert_int_equal(r[7], 1); /* one answer */
    close(fd);
    short_answer("desk-lamp.local", "A", ip);
    e2e_node_stop(&node);
}

int main(void)
{
    e2e_init(93);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(records, e2e_teardown),
        cmocka_unit_test_teardown(no_psk_and_the_default_name, e2e_teardown),
        cmocka_unit_test_teardown(without_mdns_nothing_answers, e2e_teardown),
        cmocka_unit_test_teardown(garbage_gets_nothing, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
