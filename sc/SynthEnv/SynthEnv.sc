// SynthEnv: the sclang client of `synthenv serve`, an OSC agent server that matches sounds with
// synthenv's synths. See HelpSource/Classes/SynthEnv.schelp and the synthenv README.
SynthEnv {
	classvar <>executable;  // the venv's synthenv, e.g. "~/synthenv/.venv/bin/synthenv": lets SynthEnv start the server
	var <addr, <pid, pending, nextId = 0, responders, synthsAction, ready = false;

	*new { |port = 57130, host = "127.0.0.1"|
		^super.new.init(host, port)
	}

	// start `synthenv serve` (needs SynthEnv.executable) and call onReady.(aSynthEnv) once it answers
	*start { |port = 57130, onReady, backend = \nrt, policy, timeout = 30|
		^this.new(port).startServer(onReady, backend, policy, timeout)
	}

	// the project's SynthDefs (sources next to this Quark: sc/synthenv_*.scd), added to the SynthDescLib
	// and sent to the server
	*addSynthDefs { |server|
		server = server ? Server.default;
		^this.synthDefSources.collect { |path|
			var def = path.load;
			def.add;
			if(server.serverRunning) { def.send(server) };
			def.name
		}
	}

	*synthDefSources {
		^(PathName(this.filenameSymbol.asString).pathOnly +/+ ".." +/+ "synthenv_*.scd").pathMatch.sort
	}

	init { |host, port|
		addr = NetAddr(host, port);
		pending = Dictionary.new;
		responders = [
			OSCFunc({ |msg| this.prParams(msg) }, '/synthenv/params', addr),
			OSCFunc({ |msg| this.prProgress(msg) }, '/synthenv/progress', addr),
			OSCFunc({ |msg| this.prError(msg) }, '/synthenv/error', addr),
			OSCFunc({ |msg| this.prCancelled(msg) }, '/synthenv/cancelled', addr),
			OSCFunc({ |msg| this.prSynths(msg) }, '/synthenv/synths', addr),
			OSCFunc({ ready = true }, '/synthenv/pong', addr)
		];
	}

	// match a sound file: action.(params, synth) gets the flat [\name, value, ...] array that Synth takes;
	// progress.(renders, bestDistance) while it works; errorAction.(text) if it fails. Returns the request id.
	match { |path, synth = \auto, budget = 50, action, method = \default, progress, errorAction|
		var id;
		nextId = nextId + 1;
		id = nextId;
		pending[id] = (action: action, progress: progress, error: errorAction);
		addr.sendMsg('/synthenv/match', id, path.asString.standardizePath, synth.asString, budget.asInteger,
			method.asString);
		^id
	}

	// match a sound in a server buffer: it is written to a temporary file first (see the help file)
	matchBuffer { |buffer, synth = \auto, budget = 50, action, method = \default, progress, errorAction|
		var path = PathName.tmp +/+ "synthenv_buffer_%_%.wav".format(buffer.bufnum, UniqueID.next);
		fork {
			buffer.write(path, "wav", "float");
			buffer.server.sync;
			this.match(path, synth, budget, action, method, progress, errorAction);
		};
	}

	cancel { |id|
		addr.sendMsg('/synthenv/cancel', id);
	}

	// action.(dict): synth name -> [[param, low, high, default], ...]
	synths { |action|
		synthsAction = action;
		addr.sendMsg('/synthenv/synths');
	}

	startServer { |onReady, backend = \nrt, policy, timeout = 30|
		var cmd;
		if(executable.isNil) {
			Error("SynthEnv.executable is not set: SynthEnv.executable = \"/path/to/synthenv/.venv/bin/synthenv\"").throw
		};
		cmd = [executable.standardizePath, "serve", "--port", addr.port.asString, "--backend", backend.asString];
		if(policy.notNil) { cmd = cmd ++ ["--policy", policy.asString.standardizePath] };
		pid = cmd.unixCmd(postOutput: true);
		ShutDown.add { this.stopServer };
		fork {
			var waited = 0;
			while { ready.not and: { waited < timeout } } {
				addr.sendMsg('/synthenv/ping', 0);
				0.25.wait;
				waited = waited + 0.25;
			};
			if(ready) { onReady.value(this) } { "SynthEnv: synthenv serve did not answer within % s".format(timeout).warn };
		};
	}

	stopServer {
		if(pid.notNil) { thisProcess.platform.killProcessByID(pid); pid = nil };
	}

	free {
		responders.do(_.free);
		this.stopServer;
	}

	prParams { |msg|
		var entry = pending.removeAt(msg[1]);
		if(entry.notNil) { entry[\action].value(msg[3..], msg[2]) };
	}

	prProgress { |msg|
		var entry = pending[msg[1]];
		if(entry.notNil) { entry[\progress].value(msg[2], msg[3]) };
	}

	prError { |msg|
		var entry = pending.removeAt(msg[1]);
		var text = msg[2].asString;
		if(entry.notNil and: { entry[\error].notNil }) {
			entry[\error].value(text)
		} {
			"SynthEnv: request % failed: %".format(msg[1], text).warn
		};
	}

	prCancelled { |msg|
		pending.removeAt(msg[1]);
		"SynthEnv: match % cancelled".format(msg[1]).postln;
	}

	prSynths { |msg|
		var dict = IdentityDictionary.new, i = 1;
		while { i < msg.size } {
			var name = msg[i].asSymbol, n = msg[i + 1];
			dict[name] = Array.fill(n, { |k| msg[(i + 2 + (4 * k)) .. (i + 5 + (4 * k))] });
			i = i + 2 + (4 * n);
		};
		synthsAction.value(dict);
	}
}
