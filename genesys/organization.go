package genesys

import "context"

// Organization is the Genesys Cloud organization the OAuth client belongs to.
type Organization struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	ThirdPartyOrgName string `json:"thirdPartyOrgName,omitempty"`
}

// Organization returns the caller's organization (GET /api/v2/organizations/me). Its ID is the
// {orgId} of EventBridge partner event source names.
func (c *Client) Organization(ctx context.Context) (*Organization, error) {
	var o Organization
	if err := c.do(ctx, get("/api/v2/organizations/me", nil), &o); err != nil {
		return nil, err
	}
	return &o, nil
}
