/* aloft-node: scheduled checks against aloftd's GET /update (being written). */
#include "node.h"

int node_check_start(struct node *n)
{
    (void)n;
    return 0;
}
