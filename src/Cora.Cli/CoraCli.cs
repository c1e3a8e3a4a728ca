using System.CommandLine;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary>The <c>cora</c> command-line tool, built on the ML.NET surface (Cora.Estimators). One file per command.</summary>
public static class CoraCli
{
    /// <summary>Exit codes: what a scheduler may do about each (docs/serving.md; the Job's podFailurePolicy uses them).</summary>
    public const int Ok = 0, Failed = 1, Usage = 2, BadInput = 3, Cancelled = 130;

    /// <summary>Runs the tool; returns the exit code: 0 ok, 1 a failure a retry may cure (memory, I/O, a device), 2 a usage error,
    /// 3 bad or missing input (a model, LLM or data file that is absent, corrupt or not the one recorded: retrying cannot help),
    /// 130 cancelled.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct = default)
    {
        ParseResult parse; Option<bool> verbose;
        try { (parse, verbose) = Parse(args, new CliContext(stdout, stderr, ct)); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            stderr.WriteLine($"error: {ErrorLine(e.Message)}");   // a validator that met a value it could not read: a usage error
            return 2;
        }
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) stderr.WriteLine($"error: {ErrorLine(e.Message)}");
            return 2;
        }
        // The scratch folder is checked before any work: a bad CORA_TMPDIR would otherwise fail at the first save or load.
        if (parse.Action is not System.CommandLine.Help.HelpAction
            && Environment.GetEnvironmentVariable(Microsoft.ML.Cora.IO.ScratchSpace.Variable) is { Length: > 0 } scratch
            && Microsoft.ML.Cora.IO.FileChecks.FolderProblem(scratch) is { } problem)
        {
            stderr.WriteLine($"error: {ErrorLine($"{Microsoft.ML.Cora.IO.ScratchSpace.Variable}: {problem} Point it at a writable folder, or unset it to use the system temp folder.")}");
            return 2;
        }
        try
        {
            // CORA_LIBTORCH, before TorchSharp starts (doctor reports a failure itself, after the versions).
            if (parse.CommandResult.Command.Name != "doctor") LibTorchRuntime.EnsureLoaded();
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            var inner = e;
            while (inner is System.Reflection.TargetInvocationException or AggregateException && inner.InnerException is not null) inner = inner.InnerException;
            stderr.WriteLine(parse.GetValue(verbose) ? $"error: {e}" : $"error: {ErrorLine(inner.Message)}");
            return inner switch
            {
                OperationCanceledException => Cancelled, UsageException => Usage,
                InvalidDataException or FileNotFoundException or DirectoryNotFoundException => BadInput,
                _ => Failed,
            };
        }
    }

    /// <summary>Parses without running (e.g. to check the arguments a deployment file passes).</summary>
    internal static (ParseResult parse, Option<bool> verbose) Parse(string[] args, CliContext ctx)
    {
        var verbose = new Option<bool>("--verbose") { Description = "Show stack traces on errors.", Recursive = true };
        var root = new RootCommand("cora: CoRA (Collaborative LoRA) recommenders on a frozen LLaMA-family LLM.") { verbose };
        foreach (var c in new[] { TrainCommand.Create(ctx), EvaluateCommand.Create(ctx), PredictCommand.Create(ctx), RecommendCommand.Create(ctx),
                                  QuickstartCommand.Create(ctx), DataCommand.Create(ctx), DoctorCommand.Create(ctx), BenchCommand.Create(ctx), ScoreCommand.Create(ctx), InspectCommand.Create(ctx) })
            root.Subcommands.Add(c);
#if CORA_SERVE
        root.Subcommands.Add(ServeCommand.Create(ctx));
#endif
        return (root.Parse(args), verbose);
    }

    /// <summary>One line, at most 400 characters (long values elided in the middle).</summary>
    internal static string ErrorLine(string message) => Microsoft.ML.Cora.IO.ErrorText.Elide(message.Replace("\r", " ").Replace("\n", " "), 400);
}
