/* aloftd: health checks for load balancers and service managers, without
 * a token and cheap enough to ask every second.
 *   GET /healthz  200 {"status": "ok"}: the process serves requests; it
 *                 touches no database, so a database outage does not get
 *                 a healthy process restarted
 *   GET /readyz   200 {"status": "ready", "schema": N}: the database
 *                 answers (one small query) and has every migration this
 *                 build knows; else 503 with the reason, so traffic goes
 *                 to another instance until it is back */
#include "aloftd.h"

enum MHD_Result aloftd_healthz(struct MHD_Connection *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    return aloftd_reply_json(c, 200, j);
}

enum MHD_Result aloftd_readyz(struct aloftd *d, struct MHD_Connection *c)
{
    int version = 0, wanted = aloft_store_schema_wanted();
    if (aloft_store_schema_version(d->store, &version))
        return aloftd_reply_error(c, 503, "database_unavailable", "the database does not answer: %s",
                                  aloft_store_error());
    if (version != wanted)
        return aloftd_reply_error(c, 503, "schema_mismatch",
                                  "the database's schema is at version %d, this aloftd's at %d", version, wanted);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ready");
    cJSON_AddNumberToObject(j, "schema", version);
    return aloftd_reply_json(c, 200, j);
}
