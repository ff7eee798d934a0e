/* aloft on ESP-IDF: the frontend's files through esp_littlefs. The active
 * www slot is mounted read-only at /www (PROTOCOLS.md §2); a slot the
 * agent just wrote raw is checked by mounting it read-only elsewhere for a
 * moment. Files are read with stdio through the VFS, each chunk opening
 * the file afresh: no handle is held between calls, so a reply that is
 * never read to its end (HEAD, a client gone) leaves nothing open. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "aloft/err.h"
#include "esp_littlefs.h"
#include "glue.h"

#define BASE "/www"
#define CHECK_BASE "/www_check"
#define FULL_MAX (sizeof BASE + ALOFT_PUSH_PATH_MAX + 16) /* BASE + a path as the agent asks */

static esp_err_t mount_at(const char *base, const struct aloft_part *p)
{
    esp_vfs_littlefs_conf_t conf = {.base_path = base, .partition_label = p->label, .read_only = 1};
    return esp_vfs_littlefs_register(&conf);
}

static int check(void *ctx, const struct aloft_part *p)
{
    struct aloft_idf_www *w = ctx;
    if (!strcmp(w->mounted, p->label)) /* the active slot mounted already */
        return 0;
    size_t total = 0, used = 0;
    esp_err_t err = mount_at(CHECK_BASE, p);
    if (err == ESP_OK) {
        err = esp_littlefs_info(p->label, &total, &used);
        esp_vfs_littlefs_unregister(p->label);
    }
    return err == ESP_OK ? 0 : ALOFT_E_CORRUPT;
}

static int mount(void *ctx, const struct aloft_part *p)
{
    struct aloft_idf_www *w = ctx;
    if (w->mounted[0])
        esp_vfs_littlefs_unregister(w->mounted);
    w->mounted[0] = 0;
    if (mount_at(BASE, p) != ESP_OK)
        return ALOFT_E_CORRUPT;
    snprintf(w->mounted, sizeof w->mounted, "%s", p->label);
    return 0;
}

static int stat_file(void *ctx, const char *path, uint32_t *size)
{
    struct aloft_idf_www *w = ctx;
    char full[FULL_MAX];
    struct stat st;
    snprintf(full, sizeof full, BASE "%s", path);
    if (!w->mounted[0] || stat(full, &st) != 0 || !S_ISREG(st.st_mode))
        return ALOFT_E_NOTFOUND;
    *size = (uint32_t)st.st_size;
    return 0;
}

static int read_file(void *ctx, const char *path, uint32_t off, void *buf, size_t len)
{
    struct aloft_idf_www *w = ctx;
    char full[FULL_MAX];
    snprintf(full, sizeof full, BASE "%s", path);
    FILE *f = w->mounted[0] ? fopen(full, "rb") : NULL;
    if (!f)
        return ALOFT_E_NOTFOUND;
    size_t got = fseek(f, (long)off, SEEK_SET) == 0 ? fread(buf, 1, len, f) : 0;
    int rc = ferror(f) || (got == 0 && len && !feof(f)) ? ALOFT_E_IO : (int)got;
    fclose(f);
    return rc;
}

struct aloft_www_fs aloft_idf_www(struct aloft_idf_www *w)
{
    return (struct aloft_www_fs){
        .ctx = w, .check = check, .mount = mount, .stat = stat_file, .read = read_file,
    };
}
