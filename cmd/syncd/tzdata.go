package main

// The time zone database is linked in: --timezone is validated with
// time.LoadLocation, and the container image (FROM scratch) has no
// /usr/share/zoneinfo.
import _ "time/tzdata"
