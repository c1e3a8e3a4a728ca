using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>
/// Named <see cref="Linear"/> children, one per targeted projection (state-dict keys <c>name.weight</c>, as
/// <c>ModuleDict</c> gives). Used instead of TorchSharp 0.107's <c>ModuleDict</c>, whose <c>to(device|dtype)</c>
/// throws "An item with the same key has already been added. Key: Item" (its two indexers share the reflected
/// name "Item"), which made every move of CoRA, LoRA or CoLLM weights to CUDA or another dtype fail.
/// </summary>
internal sealed class LinearMap : nn.Module
{
    private readonly Dictionary<string, Linear> _byName = new(StringComparer.Ordinal);

    public LinearMap(string name) : base(name) { }

    public void Add(string name, Linear linear)
    {
        register_module(name, linear);
        _byName.Add(name, linear);
    }

    public bool TryGetValue(string name, out Linear linear) => _byName.TryGetValue(name, out linear!);
    public Linear this[string name] => _byName[name];
    public int Count => _byName.Count;
    public IEnumerable<Linear> values() => _byName.Values;
}
