/* sleeper: the idle baseline, a static program that does nothing at all until a signal ends it. Its RSS
 * and its wake-ups are what "nothing" costs on this machine. */
#include <unistd.h>

int main(void)
{
	for (;;)
		pause();
}
