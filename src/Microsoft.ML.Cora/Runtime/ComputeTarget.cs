using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Where a model computes and the frozen LLM's dtype, resolved once from the strings users give ("cuda:1", "auto", "bf16") at the
/// public entry points (<see cref="CoraDevice"/> parses them) and passed down as this value.
/// </summary>
/// <param name="Device">The device every part lives on.</param>
/// <param name="LlmDtype">The frozen LLM's dtype (the trainable parts stay float32).</param>
public sealed record ComputeTarget(Device Device, ScalarType LlmDtype)
{
    /// <summary>Resolves a device (cpu, cuda, cuda:N or auto) and an LLM dtype (auto, bf16, fp16 or fp32; auto = bf16 on CUDA, fp32
    /// on the CPU); throws naming the value when one is unknown or the device is not there.</summary>
    public static ComputeTarget Resolve(string? device, string? llmDtype = null)
    {
        var d = CoraDevice.Resolve(device);
        return new(d, CoraDevice.ResolveDtype(llmDtype, d));
    }
}
