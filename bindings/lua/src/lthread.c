/*
** lthread.c: corio.to_thread, corio.threads.  (Placeholder: filled in by its issue.)
*/
#include "lcorio.h"

void lcorio_thread_open(lua_State *L) { (void)L; }
