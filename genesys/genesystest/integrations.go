package genesystest

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// knownIntegrationTypes are the integration types the fake can install.
var knownIntegrationTypes = map[string]string{
	"amazon-eventbridge-source": "Amazon EventBridge Source",
	"purecloud-data-actions":    "Genesys Cloud Data Actions",
	"custom-rest-actions":       "Web Services Data Actions",
}

type integration struct {
	ID, Name, Type, Notes string
	IntendedState         string
	Reported              string
	ReportedDetail        string
	LastUpdated           time.Time
	cfg                   configState
}

type configState struct {
	Version     int
	Name, Notes string
	Properties  map[string]any
	Advanced    map[string]any
	Credentials map[string]any
}

func (in *integration) view() map[string]any {
	rs := map[string]any{"code": in.Reported, "effective": in.Reported, "lastUpdated": in.LastUpdated.UTC().Format(time.RFC3339Nano)}
	if in.ReportedDetail != "" {
		rs["detail"] = map[string]any{"message": in.ReportedDetail}
	}
	return map[string]any{
		"id":              in.ID,
		"name":            in.Name,
		"integrationType": map[string]any{"id": in.Type, "name": knownIntegrationTypes[in.Type]},
		"notes":           in.Notes,
		"intendedState":   in.IntendedState,
		"reportedState":   rs,
		"selfUri":         "/api/v2/integrations/" + in.ID,
	}
}

func (in *integration) configView() map[string]any {
	c := in.cfg
	return map[string]any{
		"id":          in.ID,
		"name":        c.Name,
		"notes":       c.Notes,
		"version":     c.Version,
		"properties":  orEmpty(c.Properties),
		"advanced":    orEmpty(c.Advanced),
		"credentials": orEmpty(c.Credentials),
		"selfUri":     "/api/v2/integrations/" + in.ID + "/config/current",
	}
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// IntegrationCount returns how many integrations of the type exist (all types when typeID is "").
func (s *Server) IntegrationCount(typeID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, in := range s.integrations {
		if typeID == "" || in.Type == typeID {
			n++
		}
	}
	return n
}

// ConfigVersion returns the current config version of the integration, or 0 if there is none.
func (s *Server) ConfigVersion(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.findLocked(id); in != nil {
		return in.cfg.Version
	}
	return 0
}

// BumpConfigVersion simulates another writer: it increments the integration's config version, so
// that a client holding the old version gets a 409 on its next write.
func (s *Server) BumpConfigVersion(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.findLocked(id); in != nil {
		in.cfg.Version++
	}
}

// SeedEventBridgeIntegration installs a configured, enabled EventBridge integration as if an
// administrator had made it, and returns its id.
func (s *Server) SeedEventBridgeIntegration(name, awsAccount, awsRegion, suffix string, topics []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.newIntegrationLocked("amazon-eventbridge-source", name)
	filter := make([]any, len(topics))
	for i, t := range topics {
		filter[i] = t
	}
	in.cfg.Version++
	in.cfg.Properties = map[string]any{
		"awsAccountId": awsAccount, "awsAccountRegion": awsRegion, "eventSourceSuffix": suffix, "eventFilter": filter,
	}
	in.IntendedState, in.Reported = "ENABLED", "ACTIVE"
	return in.ID
}

// CreateIntegration installs an integration of the type as POST /api/v2/integrations does:
// disabled, with an empty config at version 1. Tests use it for the leftover of a run that
// stopped right after creating one. It returns the id, and panics on a type the fake does not
// know, a bug in the test.
func (s *Server) CreateIntegration(typeID, name string) string {
	if _, ok := knownIntegrationTypes[typeID]; !ok {
		panic(fmt.Sprintf("genesystest: unknown integration type %q", typeID))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newIntegrationLocked(typeID, name).ID
}

// EditIntegrationConfig changes the integration's config as an administrator would in the admin
// UI, and bumps its version: each of properties is set (a nil value removes the property), and
// advanced and credentials, when not nil, replace those sections. Tests use it to give an
// integration settings a client must keep. It reports whether the integration exists.
func (s *Server) EditIntegrationConfig(id string, properties, advanced, credentials map[string]any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.findLocked(id)
	if in == nil {
		return false
	}
	// New maps, never changed in place: an answer being written outside the lock may still be
	// reading the old ones.
	props := maps.Clone(in.cfg.Properties)
	if props == nil {
		props = map[string]any{}
	}
	for k, v := range properties {
		if v == nil {
			delete(props, k)
		} else {
			props[k] = v
		}
	}
	in.cfg.Properties = props
	if advanced != nil {
		in.cfg.Advanced = maps.Clone(advanced)
	}
	if credentials != nil {
		in.cfg.Credentials = maps.Clone(credentials)
	}
	in.cfg.Version++
	return true
}

// reportedCodes are the codes of an integration's reportedState.
var reportedCodes = map[string]bool{"ACTIVE": true, "ACTIVATING": true, "INACTIVE": true, "DEACTIVATING": true, "ERROR": true}

// SetReportedState sets the reportedState of the integration: its code (ACTIVE, ACTIVATING,
// INACTIVE, DEACTIVATING or ERROR) and the detail message Genesys gives with an ERROR ("" for
// none). Genesys activates an integration asynchronously: once enabled, it reports ACTIVATING
// until it runs (ACTIVE) or fails (ERROR). The fake reports the outcome as soon as the integration
// is enabled or disabled (PATCH), and changes the state on nothing else; a test of a client that
// reads the state while it changes sets it here, from a SetHook function to change it in the
// middle of the client's sequence. It reports whether the integration exists, and panics on a code
// Genesys does not use, a bug in the test.
func (s *Server) SetReportedState(id, code, detail string) bool {
	if !reportedCodes[code] {
		panic(fmt.Sprintf("genesystest: %q is not a reportedState code", code))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.findLocked(id)
	if in == nil {
		return false
	}
	in.Reported, in.ReportedDetail, in.LastUpdated = code, detail, s.opts.now()
	return true
}

func (s *Server) newIntegrationLocked(typeID, name string) *integration {
	s.nextID++
	if name == "" {
		name = knownIntegrationTypes[typeID]
	}
	in := &integration{
		ID:            s.opts.integrationID(s.nextID),
		Name:          name,
		Type:          typeID,
		IntendedState: "DISABLED",
		Reported:      "INACTIVE",
		LastUpdated:   s.opts.now(),
		cfg:           configState{Version: 1, Name: name},
	}
	s.integrations = append(s.integrations, in)
	return in
}

func (s *Server) findLocked(id string) *integration {
	for _, in := range s.integrations {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func (s *Server) handleListIntegrations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size := atoiOr(q.Get("pageSize"), 25)
	page := atoiOr(q.Get("pageNumber"), 1)
	if size < 1 || page < 1 {
		s.writeError(w, http.StatusBadRequest, "bad.request", "pageSize and pageNumber must be positive")
		return
	}
	size = min(size, s.opts.maxPageSize)
	typeID := q.Get("integrationType")
	s.mu.Lock()
	var matching []map[string]any
	for _, in := range s.integrations {
		if typeID == "" || in.Type == typeID {
			matching = append(matching, in.view())
		}
	}
	s.mu.Unlock()
	total := len(matching)
	pageCount := (total + size - 1) / size
	from := min((page-1)*size, total)
	to := min(from+size, total)
	entities := matching[from:to]
	if entities == nil {
		entities = []map[string]any{}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{
		"entities": entities, "pageSize": size, "pageNumber": page, "total": total, "pageCount": pageCount,
	})
}

func atoiOr(s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func (s *Server) handleCreateIntegration(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name            string `json:"name"`
		IntegrationType struct {
			ID string `json:"id"`
		} `json:"integrationType"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if _, ok := knownIntegrationTypes[body.IntegrationType.ID]; !ok {
		s.writeError(w, http.StatusBadRequest, "invalid.integration.type", "Unknown integration type "+body.IntegrationType.ID)
		return
	}
	s.mu.Lock()
	in := s.newIntegrationLocked(body.IntegrationType.ID, body.Name)
	view := in.view()
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, view)
}

func (s *Server) withIntegration(w http.ResponseWriter, r *http.Request, f func(in *integration)) {
	s.mu.Lock()
	in := s.findLocked(r.PathValue("id"))
	if in == nil {
		s.mu.Unlock()
		s.writeError(w, http.StatusNotFound, "not.found", "The requested integration was not found.")
		return
	}
	f(in)
	s.mu.Unlock()
}

func (s *Server) handleGetIntegration(w http.ResponseWriter, r *http.Request) {
	var view map[string]any
	s.withIntegration(w, r, func(in *integration) { view = in.view() })
	if view != nil {
		s.writeJSON(w, http.StatusOK, view)
	}
}

func (s *Server) handlePatchIntegration(w http.ResponseWriter, r *http.Request) {
	var body struct {
		IntendedState string `json:"intendedState"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if body.IntendedState != "ENABLED" && body.IntendedState != "DISABLED" {
		s.writeError(w, http.StatusBadRequest, "bad.request", "intendedState must be ENABLED or DISABLED")
		return
	}
	var view map[string]any
	s.withIntegration(w, r, func(in *integration) {
		in.IntendedState = body.IntendedState
		in.LastUpdated = s.opts.now()
		in.ReportedDetail = ""
		switch {
		case body.IntendedState == "DISABLED":
			in.Reported = "INACTIVE"
		case in.Type == "amazon-eventbridge-source" && validEventBridgeProps(in.cfg.Properties) != "":
			in.Reported, in.ReportedDetail = "ERROR", validEventBridgeProps(in.cfg.Properties)
		default:
			in.Reported = "ACTIVE"
		}
		view = in.view()
	})
	if view != nil {
		s.writeJSON(w, http.StatusOK, view)
	}
}

func (s *Server) handleDeleteIntegration(w http.ResponseWriter, r *http.Request) {
	var view map[string]any
	s.withIntegration(w, r, func(in *integration) {
		view = in.view()
		for i, x := range s.integrations {
			if x == in {
				s.integrations = append(s.integrations[:i], s.integrations[i+1:]...)
				break
			}
		}
	})
	if view != nil {
		s.writeJSON(w, http.StatusOK, view)
	}
}

func (s *Server) handleGetConfig(w http.ResponseWriter, r *http.Request) {
	var view map[string]any
	s.withIntegration(w, r, func(in *integration) { view = in.configView() })
	if view != nil {
		s.writeJSON(w, http.StatusOK, view)
	}
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	suffixRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// validEventBridgeProps returns why the properties cannot run an EventBridge source, or "".
func validEventBridgeProps(p map[string]any) string {
	acct, _ := p["awsAccountId"].(string)
	region, _ := p["awsAccountRegion"].(string)
	suffix, _ := p["eventSourceSuffix"].(string)
	switch {
	case !accountRE.MatchString(acct):
		return "awsAccountId must be 12 digits"
	case region == "":
		return "awsAccountRegion is required"
	case !suffixRE.MatchString(suffix):
		return "eventSourceSuffix must be at most 64 of [A-Za-z0-9._-]"
	}
	return ""
}

// handlePutConfig stores a config. The body is the whole config Genesys documents,
// {"name","notes","version","properties":{...},"advanced":{},"credentials":{}}: a body without
// the advanced or credentials object is malformed (400), as a client that leaves them out would
// wipe what an administrator put there.
func (s *Server) handlePutConfig(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name        string         `json:"name"`
		Notes       string         `json:"notes"`
		Version     *int           `json:"version"`
		Properties  map[string]any `json:"properties"`
		Advanced    map[string]any `json:"advanced"`
		Credentials map[string]any `json:"credentials"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if body.Version == nil {
		s.writeError(w, http.StatusBadRequest, "bad.request", "version is required")
		return
	}
	s.mu.Lock()
	in := s.findLocked(r.PathValue("id"))
	if in == nil {
		s.mu.Unlock()
		s.writeError(w, http.StatusNotFound, "not.found", "The requested integration was not found.")
		return
	}
	if body.Advanced == nil || body.Credentials == nil {
		s.mu.Unlock()
		s.writeError(w, http.StatusBadRequest, "bad.request", "advanced and credentials must be objects ({} for none)")
		return
	}
	if *body.Version != in.cfg.Version {
		cur := in.cfg.Version
		s.mu.Unlock()
		s.writeError(w, http.StatusConflict, "conflict",
			fmt.Sprintf("The version supplied (%d) does not match the current version (%d).", *body.Version, cur))
		return
	}
	if in.Type == "amazon-eventbridge-source" {
		if why := validEventBridgeProps(body.Properties); why != "" {
			s.mu.Unlock()
			s.writeError(w, http.StatusBadRequest, "bad.request", why)
			return
		}
		if _, ok := body.Properties["eventFilter"].([]any); !ok {
			s.mu.Unlock()
			s.writeError(w, http.StatusBadRequest, "bad.request", "eventFilter must be a list of topics")
			return
		}
	}
	in.cfg = configState{
		Version: in.cfg.Version + 1, Name: body.Name, Notes: body.Notes,
		Properties: body.Properties, Advanced: body.Advanced, Credentials: body.Credentials,
	}
	in.Name, in.Notes = body.Name, body.Notes
	view := in.configView()
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, view)
}
