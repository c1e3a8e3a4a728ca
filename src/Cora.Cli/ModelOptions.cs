using Microsoft.ML.Cora.IO;
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Cli;

/// <summary>--model and --llm, the same on every command that loads a saved model.</summary>
internal sealed record ModelOptions(Option<string> Model, Option<string?> Llm)
{
    /// <summary>Environment variable giving --llm's default (e.g. in a container where the LLM is mounted elsewhere).</summary>
    public const string LlmVariable = "CORA_LLM";

    /// <summary>--model's help where a command says nothing more: both model files are read (CliCommon.Load).</summary>
    public const string DefaultHelp = "A model zip written by 'cora train' (an ML.NET model) or by CoraModel.Save.";

    public static ModelOptions Create(string modelHelp = DefaultHelp)
    {
        var llm = new Option<string?>("--llm")
        {
            Description = $"The frozen LLM (Hugging Face folder or llama2.c .bin) where it is now, when not where the model was trained; checked against the SHA-256 the model records (default: ${LlmVariable}, else the recorded path).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(LlmVariable) is { Length: > 0 } v ? v : null,
        };
        return new(Cli.Req("--model", modelHelp), llm);
    }

    public void AddTo(Command c) { c.Options.Add(Model); c.Options.Add(Llm); }

    /// <summary>What is wrong with an LLM path (a llama2.c .bin file or a Hugging Face folder), or null.</summary>
    public static string? LlmPathProblem(string path) =>
        FileChecks.KindOf(path) is FileChecks.Kind.Regular or FileChecks.Kind.Directory ? null
            : $"'{ErrorText.Elide(path)}' is neither a llama2.c .bin file nor a Hugging Face folder";

    /// <summary>Loads the model (and its LLM from --llm when given).</summary>
    public (MLContext ml, CoraTransformer model) Load(ParseResult p, DeviceChoice on, int scoringBatchSize = 0)
    {
        // Checked here, not while parsing: a deployment file's arguments parse on any machine, the paths exist only where it runs.
        if (p.GetValue(Llm) is { } v && LlmPathProblem(v) is { } problem)
            throw new UsageException($"--llm: {problem}{(p.GetResult(Llm) is null or { Implicit: true } ? $" (from ${LlmVariable})" : "")}.");
        return Cli.Load(p.GetValue(Model)!, on, scoringBatchSize, p.GetValue(Llm));
    }
}
