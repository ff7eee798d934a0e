/* aloft-node: pull updates — download a URL into the update writer (being written). */
#include "node.h"

int node_pull_start(struct node *n, const struct node_pull_req *r)
{
    (void)r;
    node_log(n, "pull: not implemented yet");
    return -1;
}

void node_pull_boot(struct node *n)
{
    (void)n;
}

void node_pull_confirmed(struct node *n)
{
    (void)n;
}
