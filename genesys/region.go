package genesys

import (
	"fmt"
	"strings"
)

// Region is a Genesys Cloud region, identified by its API host, such as "api.mypurecloud.com".
// The constants below name every public region after the AWS region it runs in; any other host
// (a new region, a private deployment, a proxy) is a Region too: Region("api.example.net") or
// ParseRegion("example.net").
type Region string

// The Genesys Cloud regions, named after their AWS regions.
const (
	USEast1      Region = "api.mypurecloud.com"        // us-east-1, Americas (US East)
	USEast2      Region = "api.use2.us-gov-pure.cloud" // us-east-2, FedRAMP
	USWest2      Region = "api.usw2.pure.cloud"        // us-west-2, Americas (US West)
	CACentral1   Region = "api.cac1.pure.cloud"        // ca-central-1, Americas (Canada)
	SAEast1      Region = "api.sae1.pure.cloud"        // sa-east-1, Americas (São Paulo)
	MXCentral1   Region = "api.mxc1.pure.cloud"        // mx-central-1, Americas (Mexico)
	EUWest1      Region = "api.mypurecloud.ie"         // eu-west-1, EMEA (Dublin)
	EUWest2      Region = "api.euw2.pure.cloud"        // eu-west-2, EMEA (London)
	EUCentral1   Region = "api.mypurecloud.de"         // eu-central-1, EMEA (Frankfurt)
	EUCentral2   Region = "api.euc2.pure.cloud"        // eu-central-2, EMEA (Zurich)
	MECentral1   Region = "api.mec1.pure.cloud"        // me-central-1, EMEA (UAE)
	APSouth1     Region = "api.aps1.pure.cloud"        // ap-south-1, Asia Pacific (Mumbai)
	APSoutheast1 Region = "api.apse1.pure.cloud"       // ap-southeast-1, Asia Pacific (Singapore)
	APSoutheast2 Region = "api.mypurecloud.com.au"     // ap-southeast-2, Asia Pacific (Sydney)
	APNortheast1 Region = "api.mypurecloud.jp"         // ap-northeast-1, Asia Pacific (Tokyo)
	APNortheast2 Region = "api.apne2.pure.cloud"       // ap-northeast-2, Asia Pacific (Seoul)
	APNortheast3 Region = "api.apne3.pure.cloud"       // ap-northeast-3, Asia Pacific (Osaka)
	EUSCDEEast1  Region = "api.edee1.eusc-pure.cloud"  // eusc-de-east-1, EU sovereign cloud
)

// regions maps AWS region names to Genesys regions, in the order of the constants above.
var regions = []struct {
	aws    string
	region Region
}{
	{"us-east-1", USEast1},
	{"us-east-2", USEast2},
	{"us-west-2", USWest2},
	{"ca-central-1", CACentral1},
	{"sa-east-1", SAEast1},
	{"mx-central-1", MXCentral1},
	{"eu-west-1", EUWest1},
	{"eu-west-2", EUWest2},
	{"eu-central-1", EUCentral1},
	{"eu-central-2", EUCentral2},
	{"me-central-1", MECentral1},
	{"ap-south-1", APSouth1},
	{"ap-southeast-1", APSoutheast1},
	{"ap-southeast-2", APSoutheast2},
	{"ap-northeast-1", APNortheast1},
	{"ap-northeast-2", APNortheast2},
	{"ap-northeast-3", APNortheast3},
	{"eusc-de-east-1", EUSCDEEast1},
}

// Regions returns every region constant, in a stable order.
func Regions() []Region {
	out := make([]Region, len(regions))
	for i, r := range regions {
		out[i] = r.region
	}
	return out
}

// ParseRegion reads a region the way people write it in configuration: the AWS region name of one
// of the constants ("eu-west-1"), an API host ("api.mypurecloud.ie"), a login host
// ("login.mypurecloud.ie"), a bare environment domain as the official SDKs take it
// ("mypurecloud.ie"), or a URL of one of those hosts ("https://api.mypurecloud.ie/"). It returns an
// error wrapping ErrInvalidConfig for anything else: in particular for an AWS region name Genesys
// Cloud does not run in ("eu-north-1"; the error lists those it runs in), for an AWS region name
// inside a URL or with a slash, and for a host without a dot ("localhost"), which would otherwise
// become a host such as "api.eu-north-1" that only fails when it is looked up.
func ParseRegion(s string) (Region, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	for _, r := range regions {
		if v == r.aws {
			return r.region, nil
		}
	}
	if i := strings.Index(v, "://"); i >= 0 {
		v = v[i+3:]
	}
	v = strings.TrimSuffix(v, "/")
	if !strings.ContainsAny(v, "@?#") { // those are refused below, quoted redacted
		host := v
		if i := strings.IndexAny(host, ":/"); i >= 0 {
			host = host[:i]
		}
		switch {
		case awsRegionRE.MatchString(host) && isAWSRegionName(host):
			return "", fmt.Errorf("%w: region %q: write the AWS region name %s alone, or a Genesys Cloud host", ErrInvalidConfig, clean(s, 100), host)
		case awsRegionRE.MatchString(host):
			return "", fmt.Errorf("%w: region %q is not an AWS region Genesys Cloud runs in (%s); or give a Genesys Cloud host",
				ErrInvalidConfig, clean(s, 100), strings.Join(awsRegionNames(), ", "))
		case host != "" && !strings.Contains(host, "."):
			return "", fmt.Errorf("%w: region %q is not a host name with a domain, such as mypurecloud.ie, nor an AWS region name", ErrInvalidConfig, clean(s, 100))
		}
	}
	switch {
	case strings.HasPrefix(v, "login."):
		v = "api." + strings.TrimPrefix(v, "login.")
	case !strings.HasPrefix(v, "api."):
		v = "api." + v
	}
	r := Region(v)
	if err := r.validate(); err != nil {
		return "", err
	}
	return r, nil
}

// isAWSRegionName reports whether name is the AWS region of one of the constants.
func isAWSRegionName(name string) bool {
	for _, r := range regions {
		if r.aws == name {
			return true
		}
	}
	return false
}

// awsRegionNames returns the AWS regions of the constants, in their order.
func awsRegionNames() []string {
	out := make([]string, len(regions))
	for i, r := range regions {
		out[i] = r.aws
	}
	return out
}

// APIHost returns the host of the REST API, such as "api.mypurecloud.com".
func (r Region) APIHost() string { return string(r) }

// LoginHost returns the host of the OAuth server: the API host with its leading "api." replaced by
// "login.". It returns "" for a host that does not start with "api.".
func (r Region) LoginHost() string {
	rest, ok := strings.CutPrefix(string(r), "api.")
	if !ok {
		return ""
	}
	return "login." + rest
}

// AWSRegion returns the AWS region the Genesys region runs in, or "" for a host that is not one of
// the constants.
func (r Region) AWSRegion() string {
	for _, x := range regions {
		if x.region == r {
			return x.aws
		}
	}
	return ""
}

// String returns the API host.
func (r Region) String() string { return string(r) }

// validate checks that r is a plausible host name, with an optional port.
func (r Region) validate() error {
	h := string(r)
	if h == "" {
		return fmt.Errorf("%w: empty region", ErrInvalidConfig)
	}
	if strings.ContainsAny(h, "@?#") {
		// User info or a query: the value may hold a secret, so it is quoted redacted.
		return fmt.Errorf("%w: region %q is not a host name", ErrInvalidConfig, clean(redactURL(h), 100))
	}
	host, port, hasPort := strings.Cut(h, ":")
	if hasPort {
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("%w: region %q has a bad port", ErrInvalidConfig, clean(h, 100))
		}
	}
	if len(host) > 253 {
		return fmt.Errorf("%w: region host is too long", ErrInvalidConfig)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: region %q is not a host name", ErrInvalidConfig, clean(h, 100))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c >= 'A' && c <= 'Z') {
				return fmt.Errorf("%w: region %q is not a host name", ErrInvalidConfig, clean(h, 100))
			}
		}
	}
	return nil
}
