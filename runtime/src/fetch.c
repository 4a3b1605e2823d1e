/* fetch.c: placeholder until the curl multi_socket client lands. */
#include "internal.h"

void corio__fetch_shutdown(corio_rt *rt) {
  (void)rt;
}
