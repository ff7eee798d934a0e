/* fake-idf tests: the agent on the fake chip through the component's glue
 * — boot.c, device.c, settings.c and the flash port, the pull, report and
 * MQTT glue — put together as aloft_start does, with the test's own port
 * events (port.c needs the frontend's LittleFS glue) and no push server. */
#pragma once

#include <stdbool.h>

#include "glue.h"

/* Start the agent on the flash of fake_idf_test_flash; mqtt_uri may be
 * NULL. Returns the device, or NULL. */
struct aloft_idf *fake_idf_dev_start(const char *device_id, const char *mqtt_uri);

/* Wait up to timeout_ms for the agent to ask for a restart. */
bool fake_idf_dev_wait_restart(unsigned timeout_ms);

/* What the second-stage bootloader would boot from the flash now (otadata
 * as the glue left it): the partition's label into label[17]; 0 or -1. */
int fake_idf_dev_next_boot(char label[17]);
