package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is one component process started by `up`, in its own process group, with its stdout and
// stderr in a log file. It receives SIGKILL if the orchestrator dies.
type child struct {
	name    string
	args    []string
	logPath string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // valid after exited is closed
	// replaced is set before `up` stops the child on purpose (an API server restart).
	replaced bool
}

func startChild(name, logPath string, args []string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "==== %s testenv %s %s\n", time.Now().Format(time.RFC3339), name, strings.Join(args, " "))
	c := &child{name: name, args: args, logPath: logPath, log: log, exited: make(chan struct{})}
	c.cmd = exec.Command(self, append([]string{name}, args...)...)
	c.cmd.Stdout = log
	c.cmd.Stderr = log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		c.log.Close()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the child's process group and SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if !c.running() {
		return
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.exited
	}
	// Anything the component forked into its group goes too.
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
}

// exitReason describes how the child ended, with the last lines of its log.
func (c *child) exitReason() string {
	status := "exited"
	if c.err != nil {
		status = c.err.Error()
	}
	return fmt.Sprintf("%s %s; last log lines:\n%s", c.name, status, tailFile(c.logPath, 20))
}

// addressInUse reports whether the child failed because a port was taken meanwhile.
func (c *child) addressInUse() bool {
	return strings.Contains(tailFile(c.logPath, 50), "address already in use")
}

func tailFile(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "    " + strings.Join(all, "\n    ")
}

// freePort asks the kernel for an unused loopback port. Another process may take it before the
// component binds it; callers restart the component on "address already in use".
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is chosen so the n ports differ.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

var errChildExited = errors.New("component exited")

// waitReady polls check until it succeeds, the child exits, or timeout passes.
func waitReady(c *child, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if !c.running() {
			return fmt.Errorf("%w: %s", errChildExited, c.exitReason())
		}
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v; last log lines:\n%s", c.name, timeout, last, tailFile(c.logPath, 20))
		}
		select {
		case <-c.exited:
		case <-time.After(200 * time.Millisecond):
		}
	}
}
