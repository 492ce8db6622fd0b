package prober

import (
	"errors"
	"fmt"
	"net/http"

	pconfig "github.com/prometheus/common/config"
)

// withAuth wraps rt in prometheus/common's authorization and basic_auth
// round trippers as hc configures them, for the requests that do not go
// through its own transport (a websocket upgrade, HTTP/3): the same
// credentials, read from the same files, as an http probe sends.
func withAuth(hc pconfig.HTTPClientConfig, rt http.RoundTripper) (http.RoundTripper, error) {
	if a := hc.Authorization; a != nil {
		cred, err := secretReader(a.Credentials, a.CredentialsFile, a.CredentialsRef)
		if err != nil {
			return nil, fmt.Errorf("authorization: %w", err)
		}
		rt = pconfig.NewAuthorizationCredentialsRoundTripper(a.Type, cred, rt)
	}
	if b := hc.BasicAuth; b != nil {
		user, err := secretReader(pconfig.Secret(b.Username), b.UsernameFile, b.UsernameRef)
		if err != nil {
			return nil, fmt.Errorf("basic_auth username: %w", err)
		}
		pass, err := secretReader(b.Password, b.PasswordFile, b.PasswordRef)
		if err != nil {
			return nil, fmt.Errorf("basic_auth password: %w", err)
		}
		rt = pconfig.NewBasicAuthRoundTripper(user, pass, rt)
	}
	return rt, nil
}

// withOAuth2 wraps rt in prometheus/common's oauth2 round tripper when hc
// configures oauth2 (for the same requests as withAuth): the token request
// goes over TCP from source, through the target policy.
func withOAuth2(hc pconfig.HTTPClientConfig, rt http.RoundTripper, policy *Policy, source string) (http.RoundTripper, error) {
	o := hc.OAuth2
	if o == nil {
		return rt, nil
	}
	secret, err := secretReader(o.ClientSecret, o.ClientSecretFile, o.ClientSecretRef)
	if o.GrantType == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		secret, err = secretReader(o.ClientCertificateKey, o.ClientCertificateKeyFile, o.ClientCertificateKeyRef)
	}
	if err != nil {
		return nil, fmt.Errorf("oauth2: %w", err)
	}
	dialer, err := policy.Dialer("tcp", source)
	if err != nil {
		return nil, err
	}
	dialer.Resolver = Resolver
	return pconfig.NewOAuth2RoundTripper(secret, o, rt, pconfig.WithDialContextFunc(policy.Dial(dialer.DialContext))), nil
}

// secretReader reads an inline secret or a file; the secret managers of
// *_ref are not wired into isp-checker.
func secretReader(inline pconfig.Secret, file, ref string) (pconfig.SecretReader, error) {
	switch {
	case ref != "":
		return nil, errors.New("secret references (*_ref) are not supported")
	case file != "":
		return pconfig.NewFileSecret(file), nil
	}
	return pconfig.NewInlineSecret(string(inline)), nil
}
