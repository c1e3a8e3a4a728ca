using System.Diagnostics;

namespace Cora.Tests;

/// <summary>Runs a program to its end within a time limit and returns its exit code and output (stdout then stderr).</summary>
internal static class TestProcess
{
    public static (int code, string output) Run(string exe, string args, int seconds, string? cwd = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var (name, value) in env ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync(); var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(seconds * 1000)) { p.Kill(true); Assert.Fail($"{exe} {args} ran over {seconds} s"); }
        return (p.ExitCode, o.Result + e.Result);
    }
}
