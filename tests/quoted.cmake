# quoted.cmake — fails unless FILE's text, from its first #include on (the
# file's own opening comment is left out), appears verbatim in DOC, so the
# code a document shows is the code the tests build:
#   cmake -DDOC=README.md -DFILE=docs/example.c -P tests/quoted.cmake
file(READ "${DOC}" doc)
file(READ "${FILE}" text)
string(FIND "${text}" "#include" start)
string(SUBSTRING "${text}" ${start} -1 text)
string(FIND "${doc}" "${text}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${DOC} does not quote ${FILE} verbatim from its first #include; copy it")
endif()
