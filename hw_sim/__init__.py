"""Running deployed networks: Lava CPU simulation, bit-exact emulator, op counts and energy."""
