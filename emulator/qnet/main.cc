// qnet: the launcher (launcher.h).
#include "emulator/qnet/launcher.h"

int main(int argc, char** argv) { return qnet::launcher::Main(argc, argv); }
