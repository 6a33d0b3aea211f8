package dataplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	"github.com/lni/dragonboat/v4/raftio"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"starcite/fsm"
)

// Engine and LogDB shard counts are Dragonboat "hard settings": fixed for
// the life of a data directory, so they are constants no configuration
// can change. One step worker over one LogDB means one WAL write and one
// fsync per step-loop iteration for every group with work, instead of
// one per worker: on 2 cores, appends spread over 256 groups ran 27-54 %
// faster than with 4 of each (single node, 16 and 64 producers) and
// 30 % faster on the 3-node cluster.
const (
	engineShards = 1
	logDBShards  = 1
)

// RaftConfig configures this node's NodeHost and replicas.
type RaftConfig struct {
	Dir      string // NodeHost directory: Raft log, snapshots, identity
	Self     string // this node's name
	RaftPort int
	// Secret is the cluster secret (the distribution cookie) the Raft
	// deployment id derives from; every node of a cluster has the same.
	Secret string
	// TLS, when set, makes the Raft transport mutual TLS.
	TLS *PeerTLS
	// fixedDeploymentID replaces the derived id (tests: a data dir made
	// by an earlier build).
	fixedDeploymentID uint64
	RTT               time.Duration // Dragonboat's logical tick; elections take 10-20 of them
	Placement         *Placement
	Notifier          fsm.Notifier
	// OnLeader hears every leader change of a local replica. It runs on
	// Dragonboat's event goroutine: it must only record or send and return.
	OnLeader func(group int, leader uint64, term uint64)
}

// Raft is this node's Dragonboat NodeHost and the replicas it runs.
type Raft struct {
	nh     *dragonboat.NodeHost
	cfg    RaftConfig
	local  []int
	hot    fsm.HotTier // unarchived events over all local replicas
	closed atomic.Bool

	started atomic.Bool               // every local replica was started once
	probe   atomic.Pointer[Readiness] // the last probe
}

// OpenRaft opens (or creates) the NodeHost in cfg.Dir. Replicas are
// started separately with StartGroup.
func OpenRaft(cfg RaftConfig) (*Raft, error) {
	quietDragonboat()
	r := &Raft{cfg: cfg, local: cfg.Placement.LocalGroups(cfg.Self)}
	ldb := config.GetSmallMemLogDBConfig()
	ldb.Shards = logDBShards
	eng := config.GetDefaultEngineConfig()
	eng.ExecShards, eng.CommitShards, eng.ApplyShards = engineShards, engineShards, engineShards
	eng.SnapshotShards, eng.CloseShards = engineShards, engineShards
	addr := RaftAddress(cfg.Self, cfg.RaftPort)
	nhc := config.NodeHostConfig{
		NodeHostDir:       cfg.Dir,
		RaftAddress:       addr,
		RTTMillisecond:    uint64(max(cfg.RTT.Milliseconds(), 1)),
		DeploymentID:      cmp.Or(cfg.fixedDeploymentID, deploymentID(cfg.Secret)),
		RaftEventListener: leaderListener{r},
		Expert:            config.ExpertConfig{LogDB: ldb, Engine: eng},
	}
	if cfg.TLS != nil {
		// Dragonboat reads the files itself, for every connection: it
		// requires and verifies a client certificate from the CA, and
		// checks that a peer's certificate names the host it dialled.
		nhc.MutualTLS, nhc.CAFile, nhc.CertFile, nhc.KeyFile = true, cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil && deploymentChanged(err) {
		// A data dir created before the id derived from the secret keeps
		// the fixed id it was created with; any other mismatch is a
		// cookie that is not the cluster's.
		nhc.DeploymentID = legacyDeploymentID
		if nh, err = dragonboat.NewNodeHost(nhc); err == nil {
			slog.Warn("this Raft data dir predates deployment ids derived from STARCITE_COOKIE and keeps the fixed one; "+
				"without STARCITE_CLUSTER_TLS_* anyone who reaches the Raft port can send it messages", "component", "raft", "dir", cfg.Dir)
		} else if deploymentChanged(err) {
			return nil, fmt.Errorf("open raft node host at %s: %w", cfg.Dir, errOtherSecret)
		}
	}
	if err != nil && hardSettingsChanged(err) {
		return nil, fmt.Errorf("open raft node host at %s: the data dir was created with other Raft engine settings "+
			"(a pre-release build); run it with the build that created it: %w", cfg.Dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open raft node host at %s (%s): %w", cfg.Dir, addr, err)
	}
	r.nh = nh
	current.Store(r)
	return r, nil
}

// deploymentChanged recognises Dragonboat's refusal to open a data dir
// created with another deployment id (an internal sentinel, matched by
// text like hardSettingsChanged).
func deploymentChanged(err error) bool { return strings.Contains(err.Error(), "deployment ID changed") }

// hardSettingsChanged recognises Dragonboat's refusal to open a data dir
// created with other engine or LogDB shard counts. Its sentinel errors
// live in an internal package, so only their text can be matched.
func hardSettingsChanged(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "hard.go settings changed") || strings.Contains(msg, "hard setting changed")
}

type leaderListener struct{ r *Raft }

func (l leaderListener) LeaderUpdated(info raftio.LeaderInfo) {
	if l.r.cfg.OnLeader != nil && info.ShardID > 0 {
		l.r.cfg.OnLeader(int(info.ShardID-1), info.LeaderID, info.Term)
	}
}

// shardID is the Dragonboat shard of a group (shard 0 is avoided).
func shardID(group int) uint64 { return uint64(group) + 1 }

// LocalGroups are the groups this node holds a replica of.
func (r *Raft) LocalGroups() []int { return r.local }

// IsLocal reports whether this node holds a replica of group.
func (r *Raft) IsLocal(group int) bool { return r.cfg.Placement.Holds(r.cfg.Self, group) }

// StartGroup starts this node's replica of group: a fresh bootstrap with
// the static membership, or a restart from the data on disk. Starting a
// running replica is not an error.
func (r *Raft) StartGroup(group int) error {
	p := r.cfg.Placement
	self := p.ReplicaID(r.cfg.Self)
	members := map[uint64]dragonboat.Target{}
	for _, n := range p.Replicas(group) {
		members[p.ReplicaID(n)] = RaftAddress(n, r.cfg.RaftPort)
	}
	sid := shardID(group)
	if r.nh.HasNodeInfo(sid, self) {
		members = nil // restart: membership comes from the log
	}
	err := r.nh.StartConcurrentReplica(members, false,
		fsm.Factory(func(s uint64) uint64 { return s - 1 }, r.cfg.Notifier, &r.hot), config.Config{
			ShardID:   sid,
			ReplicaID: self,
			// Elections after 10 RTTs (1-2 s at the default RTT of
			// 100 ms); heartbeats every 2 RTTs. Heartbeats of every
			// group are most of an idle node's CPU: measured on 3 idle
			// nodes × 256 groups, 5.1 % of a core per node with a
			// heartbeat per RTT, 4.0 % with one per two.
			ElectionRTT:         10,
			HeartbeatRTT:        2,
			CheckQuorum:         true,
			SnapshotEntries:     2048,
			CompactionOverhead:  512,
			OrderedConfigChange: true,
		})
	if errors.Is(err, dragonboat.ErrShardAlreadyExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start group %d: %w", group, err)
	}
	return nil
}

// StartGroups starts every local replica, a few at a time.
func (r *Raft) StartGroups() error {
	var wg sync.WaitGroup
	errs := make([]error, len(r.local))
	sem := make(chan struct{}, 32)
	for i, g := range r.local {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = r.StartGroup(g)
			<-sem
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Propose makes one attempt at committing cmd in group through the local
// replica and returns the state machine's result.
func (r *Raft) Propose(ctx context.Context, group int, cmd []byte) (sm.Result, error) {
	start := time.Now()
	res, err := r.nh.SyncPropose(ctx, r.nh.GetNoOPSession(shardID(group)), cmd)
	observeProposal(start, err)
	return res, err
}

// StaleRead runs q on the local replica without a round trip: it sees
// everything this replica has applied.
func (r *Raft) StaleRead(group int, q fsm.Query) (any, error) {
	return r.nh.StaleRead(shardID(group), q)
}

// SyncRead runs q after a ReadIndex round trip: it sees every write
// acknowledged before the call.
func (r *Raft) SyncRead(ctx context.Context, group int, q fsm.Query) (any, error) {
	return r.nh.SyncRead(ctx, shardID(group), q)
}

// LastIndex is the index of the last entry in the local replica's log
// (0 when the replica is not running).
func (r *Raft) LastIndex(group int) uint64 {
	lr, err := r.nh.GetLogReader(shardID(group))
	if err != nil {
		return 0
	}
	_, last := lr.GetRange()
	return last
}

// Leader returns the leader this replica knows for group.
func (r *Raft) Leader(group int) (node string, term uint64, ok bool) {
	id, term, valid, err := r.nh.GetLeaderID(shardID(group))
	if err != nil || !valid {
		return "", term, false
	}
	node, ok = r.cfg.Placement.NodeOf(id)
	return node, term, ok
}

// HotBytes is the size of the hot tier over all local replicas.
func (r *Raft) HotBytes() int64 { return r.hot.Bytes.Load() }

// HotEvents is the number of unarchived events over all local replicas.
func (r *Raft) HotEvents() int64 { return r.hot.Events.Load() }

// ProducerBytes is what the producer cursors of all local replicas cost.
func (r *Raft) ProducerBytes() int64 { return r.hot.ProducerBytes.Load() }

// MemoryUsed is what the memory budget STARCITE_PENDING_MAX_SIZE counts
// (docs/decisions.md#d18): unarchived events and producer cursors.
func (r *Raft) MemoryUsed() int64 { return r.HotBytes() + r.ProducerBytes() }

// Close stops every replica and the NodeHost.
func (r *Raft) Close() {
	if r.closed.CompareAndSwap(false, true) {
		r.nh.Close()
	}
}

// isTemporary reports errors after which a proposal may be retried at
// once: no leader yet, queues full, replica restarting.
func isTemporary(err error) bool {
	return errors.Is(err, dragonboat.ErrShardNotReady) || errors.Is(err, dragonboat.ErrSystemBusy) ||
		errors.Is(err, dragonboat.ErrShardNotInitialized) || errors.Is(err, dragonboat.ErrShardNotFound) ||
		errors.Is(err, dragonboat.ErrShardClosed) || errors.Is(err, dragonboat.ErrAborted)
}

var quietOnce sync.Once

// quietDragonboat routes Dragonboat's logs to slog and keeps only errors:
// elections and dropped proposals are logged at WARNING and flood the log
// during every failover.
func quietDragonboat() {
	quietOnce.Do(func() {
		logger.SetLoggerFactory(func(pkg string) logger.ILogger {
			l := &slogLogger{pkg: pkg}
			l.level.Store(int32(logger.ERROR))
			return l
		})
		for _, p := range []string{"dragonboat", "raft", "rsm", "transport", "logdb", "raftpb",
			"config", "settings", "pebblekv", "tan", "registry", "gossip", "grpc", "server"} {
			logger.GetLogger(p).SetLevel(logger.ERROR)
		}
	})
}

type slogLogger struct {
	pkg   string
	level atomic.Int32
}

func (l *slogLogger) SetLevel(v logger.LogLevel) { l.level.Store(int32(v)) }

func (l *slogLogger) log(v logger.LogLevel, lvl slog.Level, format string, args []any) {
	if int32(v) <= l.level.Load() {
		slog.Log(context.Background(), lvl, fmt.Sprintf(format, args...), "component", "raft/"+l.pkg)
	}
}

func (l *slogLogger) Debugf(f string, a ...any)   { l.log(logger.DEBUG, slog.LevelDebug, f, a) }
func (l *slogLogger) Infof(f string, a ...any)    { l.log(logger.INFO, slog.LevelInfo, f, a) }
func (l *slogLogger) Warningf(f string, a ...any) { l.log(logger.WARNING, slog.LevelWarn, f, a) }
func (l *slogLogger) Errorf(f string, a ...any)   { l.log(logger.ERROR, slog.LevelError, f, a) }
func (l *slogLogger) Panicf(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	slog.Error(msg, "component", "raft/"+l.pkg)
	panic(msg)
}

// TransferLeader asks the local replica of group, when it leads, to hand
// leadership to node. A drained node moves its leaderships away, so that
// stopping it costs no election. Asynchronous: Dragonboat ignores it when
// this replica does not lead or node is not a caught-up member.
func (r *Raft) TransferLeader(group int, node string) error {
	id := r.cfg.Placement.ReplicaID(node)
	if id == 0 || !r.cfg.Placement.Holds(node, group) {
		return fmt.Errorf("%s holds no replica of group %d", node, group)
	}
	return r.nh.RequestLeaderTransfer(shardID(group), id)
}
