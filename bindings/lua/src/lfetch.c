/*
** lfetch.c: corio.fetch, get, post, session, blocking.  (Placeholder: filled in by its issue.)
*/
#include "lcorio.h"

void lcorio_fetch_open(lua_State *L) { (void)L; }
