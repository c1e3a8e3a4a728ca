using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Microsoft.ML.Cora.Llm;

/// <summary>The projections of a decoder layer that can receive a low-rank term.</summary>
internal enum ProjectionKind { Q, K, V, O, Gate, Up, Down }

/// <summary>Identifies one projection of the frozen LLM: its layer, kind and shape.</summary>
internal readonly record struct ProjectionSite(int Layer, ProjectionKind Kind, int InFeatures, int OutFeatures)
{
    /// <summary>Hugging Face style name, e.g. <c>layers.3.q_proj</c>.</summary>
    public string Name => $"layers.{Layer}.{KindName(Kind)}";

    public static string KindName(ProjectionKind k) => k switch
    {
        ProjectionKind.Q => "q_proj", ProjectionKind.K => "k_proj", ProjectionKind.V => "v_proj", ProjectionKind.O => "o_proj",
        ProjectionKind.Gate => "gate_proj", ProjectionKind.Up => "up_proj", _ => "down_proj",
    };

    public static bool TryParseKind(string? s, out ProjectionKind kind)
    {
        try { kind = ParseKind(s ?? ""); return true; }
        catch (ArgumentException) { kind = default; return false; }
    }

    public static ProjectionKind ParseKind(string s) => s.Trim().ToLowerInvariant() switch
    {
        "q" or "q_proj" => ProjectionKind.Q, "k" or "k_proj" => ProjectionKind.K, "v" or "v_proj" => ProjectionKind.V,
        "o" or "o_proj" => ProjectionKind.O, "gate" or "gate_proj" => ProjectionKind.Gate, "up" or "up_proj" => ProjectionKind.Up,
        "down" or "down_proj" => ProjectionKind.Down,
        _ => throw new ArgumentException($"Unknown projection '{s}'. Use q, k, v, o, gate, up or down."),
    };
}
