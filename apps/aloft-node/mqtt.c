/* aloft-node: MQTT commands and state (being written). */
#include "node.h"

int node_mqtt_start(struct node *n)
{
    (void)n;
    return 0;
}

void node_mqtt_stop(struct node *n)
{
    (void)n;
}
