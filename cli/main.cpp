// Placeholder until the CLI lands; keeps the build graph whole for parallel work.
int main() { return 0; }
