package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

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
// configures oauth2 (for the same requests as withAuth), as the http
// prober's client does: the token request goes over TCP from source,
// through the target policy (the token URL's host too, when oauth2's own
// proxy connects to it), without keep-alives, and ends at ctx's deadline.
// Its User-Agent is the one the wrapped request carries.
func withOAuth2(ctx context.Context, hc pconfig.HTTPClientConfig, rt http.RoundTripper, policy *Policy, source string) (http.RoundTripper, error) {
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
	if err := allowTokenURL(ctx, o, policy); err != nil {
		return nil, fmt.Errorf("oauth2 token_url: %w", err)
	}
	dialer, err := policy.Dialer("tcp", source)
	if err != nil {
		return nil, err
	}
	dialer.Resolver = Resolver
	return pconfig.NewOAuth2RoundTripper(secret, o, rt,
		pconfig.WithDialContextFunc(boundDial(ctx, policy.Dial(dialer.DialContext))),
		pconfig.WithKeepAlivesDisabled()), nil
}

// allowTokenURL applies the target policy to the token URL's host when
// oauth2's own proxy will connect to it (otherwise the dial checks the
// address itself).
func allowTokenURL(ctx context.Context, o *pconfig.OAuth2, policy *Policy) error {
	u, err := url.Parse(o.TokenURL)
	if err != nil {
		return err
	}
	proxy := o.Proxy()
	if proxy == nil {
		return nil
	}
	pu, err := proxy(&http.Request{URL: u, Header: http.Header{}})
	if err != nil || pu == nil {
		return err
	}
	return policy.AllowProxiedHost(ctx, u.Hostname(), true)
}

// boundDial returns dial, with every connection it makes bound by ctx's
// deadline and boundGrace: for requests prometheus/common makes without
// the probe's context (an oauth2 token request), so none outlives the
// probe. The grace lets a request that has ctx end by ctx first, with its
// own error.
func boundDial(ctx context.Context, dial func(ctx context.Context, network, address string) (net.Conn, error)) func(ctx context.Context, network, address string) (net.Conn, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return dial
	}
	dl = dl.Add(boundGrace)
	return func(dctx context.Context, network, address string) (net.Conn, error) {
		dctx, cancel := context.WithDeadline(dctx, dl)
		defer cancel()
		c, err := dial(dctx, network, address)
		if err == nil {
			_ = c.SetDeadline(dl)
		}
		return c, err
	}
}

const boundGrace = 500 * time.Millisecond

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
