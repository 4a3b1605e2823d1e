/*
** lserve.c: corio.serve.  (Placeholder: filled in by its issue.)
*/
#include "lcorio.h"

void lcorio_serve_open(lua_State *L) { (void)L; }
