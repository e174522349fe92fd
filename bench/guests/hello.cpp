#include <iostream>
#include <string>

int main() {
  std::string body = "hello from wasm\n";
  std::cout << "Content-Type: text/plain\n\n" << body;
  return 0;
}
