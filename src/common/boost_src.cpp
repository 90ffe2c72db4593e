// Boost.JSON and Boost.URL compiled header-only, once, here: no compiled Boost library is
// needed on any platform (Windows and macOS builds included).
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
