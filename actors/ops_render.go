package actors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"ergo.services/ergo/gen"

	"starcite/dataplane"
)

// The answers of the ops actor's commands, rendered on the node: status
// (the status keys of docs/operations.md#starcite-ops, plus what an
// operator needs to see why a node is not ready) and the shell's inspection
// commands.

type statusReport struct {
	Node                   string            `json:"node"`
	Version                string            `json:"version"`
	UptimeSeconds          int64             `json:"uptime_s"`
	LocalWriteNode         bool              `json:"local_write_node"`
	LocalMode              string            `json:"local_mode"`
	LocalReady             bool              `json:"local_ready"`
	LocalDrained           bool              `json:"local_drained"`
	WriteNodes             []string          `json:"write_nodes"`
	WriteReplicationFactor int               `json:"write_replication_factor"`
	NumGroups              int               `json:"num_groups"`
	LocalGroups            []int             `json:"local_groups"`
	RaftStorage            map[string]string `json:"raft_storage"`
	Observer               observerReport    `json:"observer"`
	Readiness              readinessReport   `json:"readiness"`
	Groups                 []groupReport     `json:"groups"`
	Archive                archiveReport     `json:"archive"`
}

type observerReport struct {
	Status         string                      `json:"status"` // ok | down
	VisibleNodes   []string                    `json:"visible_nodes"`
	ReadyNodes     []string                    `json:"ready_nodes"`
	NodeStatuses   map[string]nodeStatusReport `json:"node_statuses"`
	RaftReadyNodes []string                    `json:"raft_ready_nodes"`
}

type nodeStatusReport struct {
	Status      string `json:"status"`
	ChangedAtMs int64  `json:"changed_at_ms"`
	Visible     bool   `json:"visible"`
	RaftReady   bool   `json:"raft_ready"`
}

// readinessReport explains local_ready and /health/ready.
type readinessReport struct {
	HTTPReady     bool   `json:"http_ready"`
	Reason        string `json:"reason,omitempty"` // draining | raft_sync | observer_sync | router_sync
	Started       bool   `json:"started"`
	ProbeResult   string `json:"probe_result"`
	CheckedGroups int    `json:"checked_groups"`
	FailingGroup  *int   `json:"failing_group_id"`
	ProbeAgeMs    int64  `json:"probe_age_ms"`
	LedGroups     int    `json:"led_groups"`
}

type groupReport struct {
	Group           int      `json:"group"`
	Leader          string   `json:"leader"` // "" while unknown
	Term            uint64   `json:"term"`
	Members         []string `json:"members"`
	LogIndex        uint64   `json:"log_index"`
	Sessions        int      `json:"sessions"`
	Events          uint64   `json:"events"`
	HotEvents       int64    `json:"hot_events"`
	HotBytes        int64    `json:"hot_bytes"`
	ArchivedEvents  uint64   `json:"archived_seq_total"`
	PendingSessions int      `json:"pending_sessions"`
	Error           string   `json:"error,omitempty"`
}

// archiveReport is the archive backlog: what the hot tier holds that the
// archive does not, and the archiver's progress.
type archiveReport struct {
	PendingEvents   int64             `json:"pending_events"`
	PendingBytes    int64             `json:"pending_bytes"`
	PendingSessions int               `json:"pending_sessions"`
	Archiver        map[string]string `json:"archiver"`
}

func (w *opsWorker) status() OpsReply {
	p := w.plane
	pl := p.Placement()
	notReady, rd := p.Health(w.cfg.WriteNode)
	self := p.Self()
	r := statusReport{
		Node:                   self,
		Version:                w.cfg.Version,
		UptimeSeconds:          w.Node().Uptime(),
		LocalWriteNode:         w.cfg.WriteNode,
		LocalMode:              "router_node",
		LocalReady:             p.LocalReady(w.cfg.WriteNode, dataplane.ReadinessMaxAge),
		LocalDrained:           p.Draining(),
		WriteNodes:             pl.Nodes(),
		WriteReplicationFactor: len(pl.Replicas(0)),
		NumGroups:              pl.Groups(),
		LocalGroups:            nonNil(p.LocalGroups()),
		RaftStorage: map[string]string{
			"starcite_data_dir": w.cfg.DataDir,
			// Dragonboat keeps log, WAL and snapshots under one NodeHost
			// directory; the keys are upstream's (Ra's) names.
			"ra_data_dir":     w.cfg.RaftDir,
			"ra_wal_data_dir": w.cfg.RaftDir,
		},
		Readiness: readinessReport{Started: rd.Started, ProbeResult: rd.Probe.Result,
			CheckedGroups: rd.Probe.CheckedGroups},
	}
	if w.cfg.WriteNode {
		r.LocalMode = "write_node"
	}
	r.Readiness.Reason = notReady
	r.Readiness.HTTPReady = r.Readiness.Reason == ""
	if rd.Probe.FailingGroup >= 0 {
		g := rd.Probe.FailingGroup
		r.Readiness.FailingGroup = &g
	}
	if rd.Started {
		r.Readiness.ProbeAgeMs = time.Since(rd.At).Milliseconds()
	}

	r.Observer = observerReport{Status: "ok", VisibleNodes: []string{}, ReadyNodes: []string{},
		RaftReadyNodes: []string{}, NodeStatuses: map[string]nodeStatusReport{}}
	if st, err := w.observer(); err != nil {
		r.Observer.Status = "down"
	} else {
		r.Observer.ReadyNodes = nonNil(st.ReadyNodes)
		for _, n := range st.Nodes {
			r.Observer.NodeStatuses[n.Node] = nodeStatusReport{Status: n.Status, ChangedAtMs: n.ChangedAt.UnixMilli(),
				Visible: n.Visible, RaftReady: n.RaftReady}
			if n.Visible {
				r.Observer.VisibleNodes = append(r.Observer.VisibleNodes, n.Node)
			}
			if n.RaftReady {
				r.Observer.RaftReadyNodes = append(r.Observer.RaftReadyNodes, n.Node)
			}
		}
	}

	r.Groups = []groupReport{}
	for _, g := range p.LocalGroups() {
		gs, err := p.GroupStatus(g)
		gr := groupReport{Group: g, Leader: gs.Leader, Term: gs.Term, Members: nonNil(gs.Members),
			LogIndex: gs.LogIndex, Sessions: gs.Totals.Sessions, Events: gs.Totals.Events,
			HotEvents: gs.Totals.HotEvents, HotBytes: gs.Totals.HotBytes, ArchivedEvents: gs.Totals.ArchivedEvents,
			PendingSessions: gs.Totals.PendingSessions}
		if err != nil {
			gr.Error = err.Error()
		}
		if gs.Leader == self {
			r.Readiness.LedGroups++
		}
		r.Archive.PendingSessions += gs.Totals.PendingSessions
		r.Groups = append(r.Groups, gr)
	}
	r.Archive.PendingEvents = p.HotEvents()
	r.Archive.PendingBytes = p.HotBytes()
	r.Archive.Archiver = map[string]string{}
	if pid, err := w.Node().ProcessPID(ArchiverName); err == nil {
		if m, err := w.Node().Inspect(pid); err == nil {
			r.Archive.Archiver = m
		}
	}
	return OpsReply{Text: renderStatus(&r), JSON: mustJSON(r)}
}

func renderStatus(r *statusReport) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	kv := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	kv("node", r.Node)
	kv("version", r.Version)
	kv("uptime", (time.Duration(r.UptimeSeconds) * time.Second).String())
	kv("local_write_node", r.LocalWriteNode)
	kv("local_mode", r.LocalMode)
	kv("local_ready", r.LocalReady)
	kv("local_drained", r.LocalDrained)
	http := "ok"
	if !r.Readiness.HTTPReady {
		http = "starting (" + r.Readiness.Reason + ")"
	}
	kv("health_ready", http)
	probe := fmt.Sprintf("%s, %d groups checked, probe %dms old", r.Readiness.ProbeResult, r.Readiness.CheckedGroups,
		r.Readiness.ProbeAgeMs)
	if r.Readiness.FailingGroup != nil {
		probe += fmt.Sprintf(", failing group %d", *r.Readiness.FailingGroup)
	}
	kv("consensus_probe", probe)
	kv("write_nodes", strings.Join(r.WriteNodes, ","))
	kv("write_replication_factor", r.WriteReplicationFactor)
	kv("num_groups", r.NumGroups)
	kv("local_groups", fmt.Sprintf("%s (%d, leading %d)", ranges(r.LocalGroups), len(r.LocalGroups), r.Readiness.LedGroups))
	for _, k := range []string{"starcite_data_dir", "ra_data_dir", "ra_wal_data_dir"} {
		kv("raft_storage."+k, r.RaftStorage[k])
	}
	kv("observer.status", r.Observer.Status)
	kv("observer.visible_nodes", strings.Join(r.Observer.VisibleNodes, ","))
	kv("observer.ready_nodes", strings.Join(r.Observer.ReadyNodes, ","))
	kv("observer.raft_ready_nodes", strings.Join(r.Observer.RaftReadyNodes, ","))
	a := r.Archive
	kv("archive.pending", fmt.Sprintf("%d events, %d bytes, %d sessions", a.PendingEvents, a.PendingBytes, a.PendingSessions))
	keys := make([]string, 0, len(a.Archiver))
	for k := range a.Archiver {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv("archive."+k, a.Archiver[k])
	}
	tw.Flush()

	b.WriteString("\nnode_statuses:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tSTATUS\tCHANGED_AT\tVISIBLE\tRAFT_READY")
	nodes := make([]string, 0, len(r.Observer.NodeStatuses))
	for n := range r.Observer.NodeStatuses {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		s := r.Observer.NodeStatuses[n]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%v\t%v\n", n, s.Status,
			time.UnixMilli(s.ChangedAtMs).UTC().Format(time.RFC3339), s.Visible, s.RaftReady)
	}
	tw.Flush()

	b.WriteString("\ngroups:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tLEADER\tTERM\tLOG_INDEX\tSESSIONS\tEVENTS\tHOT_EVENTS\tHOT_BYTES\tARCHIVED\tMEMBERS")
	for _, g := range r.Groups {
		leader := g.Leader
		if leader == "" {
			leader = "-"
		}
		members := strings.Join(g.Members, ",")
		if g.Error != "" {
			members += " (" + g.Error + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", g.Group, leader, g.Term, g.LogIndex, g.Sessions,
			g.Events, g.HotEvents, g.HotBytes, g.ArchivedEvents, members)
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// ranges writes sorted ints compactly: 0-3,7,9-10.
func ranges(xs []int) string {
	var parts []string
	for i := 0; i < len(xs); {
		j := i
		for j+1 < len(xs) && xs[j+1] == xs[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(xs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", xs[i], xs[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// processes lists the node's processes, optionally those whose name or
// behaviour contains a filter.
func (w *opsWorker) processes(args []string) OpsReply {
	if len(args) > 1 {
		return failf("usage: processes [filter]")
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tNAME\tBEHAVIOR\tAPP\tMAILBOX\tUPTIME\tSTATE")
	n := 0
	err := eachProcess(w.Node(), func(p gen.ProcessShortInfo) {
		if len(args) == 1 && !strings.Contains(string(p.Name), args[0]) && !strings.Contains(p.Behavior, args[0]) {
			return
		}
		n++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.PID, orDash(string(p.Name)), p.Behavior,
			orDash(string(p.Application)), p.MessagesMailbox, time.Duration(p.Uptime)*time.Second, p.State)
	})
	if err != nil {
		return failf("list processes: %s", err)
	}
	tw.Flush()
	if n == 1 {
		b.WriteString("1 process")
	} else {
		fmt.Fprintf(&b, "%d processes", n)
	}
	return OpsReply{Text: b.String()}
}

// tree draws the supervision tree from the processes' parents, per
// application. Runs of unnamed siblings with one behaviour (tail
// sockets, pool workers) are folded after a few.
func (w *opsWorker) tree() OpsReply {
	const unfold = 3
	var all []gen.ProcessShortInfo
	if err := eachProcess(w.Node(), func(p gen.ProcessShortInfo) { all = append(all, p) }); err != nil {
		return failf("list processes: %s", err)
	}
	known := map[gen.PID]bool{}
	for _, p := range all {
		known[p.PID] = true
	}
	children := map[gen.PID][]gen.ProcessShortInfo{}
	roots := map[string][]gen.ProcessShortInfo{}
	for _, p := range all {
		if known[p.Parent] {
			children[p.Parent] = append(children[p.Parent], p)
			continue
		}
		app := string(p.Application)
		if app == "" {
			app = "(no application)"
		}
		roots[app] = append(roots[app], p)
	}
	var b strings.Builder
	var walk func(ps []gen.ProcessShortInfo, depth int)
	walk = func(ps []gen.ProcessShortInfo, depth int) {
		indent := strings.Repeat("  ", depth)
		seen := map[string]int{}
		for _, p := range ps {
			if p.Name == "" {
				if seen[p.Behavior]++; seen[p.Behavior] > unfold {
					continue
				}
			}
			fmt.Fprintf(&b, "%s%s %s %s\n", indent, orDash(string(p.Name)), p.Behavior, p.PID)
			walk(children[p.PID], depth+1)
		}
		for beh, n := range seen {
			if n > unfold {
				fmt.Fprintf(&b, "%s… %d more %s\n", indent, n-unfold, beh)
			}
		}
	}
	apps := make([]string, 0, len(roots))
	for app := range roots {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	for _, app := range apps {
		fmt.Fprintf(&b, "%s (application)\n", app)
		walk(roots[app], 1)
	}
	return OpsReply{Text: strings.TrimRight(b.String(), "\n")}
}

// inspect shows a process and what its HandleInspect reports; the
// router's leader hints come from the routing view it publishes.
func (w *opsWorker) inspect(arg string) OpsReply {
	node := w.Node()
	pid, err := resolvePID(node, arg)
	if err != nil {
		return failf("%s", err)
	}
	info, err := node.ProcessInfo(pid)
	if err != nil {
		return failf("no process %s on %s: %s", arg, string(node.Name()), err)
	}
	var state map[string]string
	if pid == w.PID() {
		state = w.HandleInspect(w.PID())
	} else if state, err = node.Inspect(pid); err != nil {
		return failf("inspect %s: %s", arg, err)
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "pid\t%s\n", info.PID)
	fmt.Fprintf(tw, "name\t%s\n", orDash(string(info.Name)))
	fmt.Fprintf(tw, "behavior\t%s\n", info.Behavior)
	fmt.Fprintf(tw, "application\t%s\n", orDash(string(info.Application)))
	fmt.Fprintf(tw, "parent\t%s\n", info.Parent)
	fmt.Fprintf(tw, "state\t%s\n", info.State)
	q := info.MailboxQueues
	fmt.Fprintf(tw, "mailbox\t%d (main %d, system %d, urgent %d, log %d)\n", q.Main+q.System+q.Urgent+q.Log,
		q.Main, q.System, q.Urgent, q.Log)
	fmt.Fprintf(tw, "messages\t%d in, %d out\n", info.MessagesIn, info.MessagesOut)
	fmt.Fprintf(tw, "uptime\t%s\n", time.Duration(info.Uptime)*time.Second)
	fmt.Fprintf(tw, "links\t%d, monitors %d\n", len(info.LinksPID)+len(info.LinksProcessID),
		len(info.MonitorsPID)+len(info.MonitorsProcessID)+len(info.MonitorsNode))
	tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	keys := make([]string, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\n", k, state[k])
	}
	tw.Flush()
	if info.Name == RouterName {
		b.WriteString("\nleader hints:\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  GROUP\tLEADER\tTERM\tAGE")
		if routes := w.plane.Routes(); routes != nil {
			for g, h := range routes.Leaders {
				if h.Node == "" {
					fmt.Fprintf(tw, "  %d\t-\t%d\t-\n", g, h.Term)
					continue
				}
				fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\n", g, h.Node, h.Term, time.Since(h.Seen).Round(time.Millisecond))
			}
		}
		tw.Flush()
	}
	return OpsReply{Text: strings.TrimRight(b.String(), "\n")}
}

// sessions lists the sessions of a local group: sessions <group> [limit].
func (w *opsWorker) sessions(args []string) OpsReply {
	if len(args) < 1 || len(args) > 2 {
		return failf("usage: sessions <group> [limit]")
	}
	g, err := strconv.Atoi(args[0])
	if err != nil || g < 0 || g >= w.plane.Placement().Groups() {
		return failf("invalid group id %q (expected configured group range)", args[0])
	}
	limit := 100
	if len(args) == 2 {
		if limit, err = strconv.Atoi(args[1]); err != nil || limit <= 0 {
			return failf("invalid limit %q (expected a positive integer)", args[1])
		}
	}
	list, totals, err := w.plane.GroupSessions(g, limit)
	if err != nil {
		return failf("%s", err)
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tTENANT\tLAST_SEQ\tARCHIVED_SEQ\tHOT_EVENTS\tHOT_BYTES\tPRODUCERS")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", s.ID, s.TenantID, s.LastSeq, s.ArchivedSeq, s.HotEvents,
			s.HotBytes, s.Producers)
	}
	tw.Flush()
	fmt.Fprintf(&b, "group %d: %d sessions (%d shown), %d events, %d hot (%d bytes), %d archived", g,
		totals.Sessions, len(list), totals.Events, totals.HotEvents, totals.HotBytes, totals.ArchivedEvents)
	return OpsReply{Text: b.String()}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}
